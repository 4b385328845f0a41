"""Reliability suite, part 1 (LLM faults), fast: ~30 asks with 30% of requests faulted end
answered or with a typed error in time, within the retry policy; the fault kinds themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragloom.core.errors import (
    MalformedResponseError,
    ProviderUnavailableError,
)
from ragloom.core.llm import LLMGateway
from ragloom.core.testing import Fault, OpenAICompatibleServer, make_test_settings
from tests.reliability.llm_faults import FaultyLLM, SuiteConfig, run_fault_suite


def test_thirty_asks_with_faulted_requests_all_end_in_time(tmp_path: Path) -> None:
    config = SuiteConfig(asks=30, concurrency=8, rate=0.3)
    faulty = FaultyLLM(rate=config.rate, seed=config.seed, timeout=config.timeout)
    with OpenAICompatibleServer(faulty) as server:
        summary = run_fault_suite(server, faulty, tmp_path, config)
    assert summary["violations"] == {k: 0 for k in summary["violations"]}, summary
    assert summary["answered"] + summary["typed_errors"] == 30
    assert summary["answered"] >= 24, summary  # retries and fallbacks absorb most faults
    assert 0.2 <= summary["faulted_share"] <= 0.4
    assert len(summary["faults_injected"]) >= 7  # nearly every kind was drawn
    assert 0 < summary["retries"] <= summary["retry_log_lines"]  # + calls cut off by a failure
    assert summary["parse_retries"] > 0  # malformed replies were asked again, not fatal
    assert summary["max_attempts_per_call"] <= summary["policy_max_attempts"]


def test_a_truncated_body_is_retried_and_a_truncated_stream_is_a_typed_error(
    tmp_path: Path,
) -> None:
    with OpenAICompatibleServer() as server:
        settings = make_test_settings(tmp_path, base_url=server.base_url)
        chat = LLMGateway(settings.llm).chat_model()
        server.enqueue(Fault(truncate=True, reply="cut off here"), "whole")
        assert chat.invoke("hi").content == "whole"
        assert len(server.chat_requests()) == 2
        server.enqueue(Fault(truncate=True, reply="one two three four five six seven eight"))
        pieces: list[str] = []
        with pytest.raises(ProviderUnavailableError, match="ended early"):
            for chunk in chat.stream("hi"):
                pieces.append(str(chunk.content))
        assert 0 < len("".join(pieces)) < len("one two three four five six seven eight")


def test_a_stream_dropped_before_its_first_chunk_is_retried(tmp_path: Path) -> None:
    """Nothing reached the consumer, so a retry repeats no token (found by the fault suite:
    such streams used to fail the ask with 'ended early after 0 chunk(s)')."""
    with OpenAICompatibleServer() as server:
        settings = make_test_settings(tmp_path, base_url=server.base_url)
        chat = LLMGateway(settings.llm).chat_model()
        server.enqueue(Fault(drop_connection=True), "fine now")
        assert "".join(str(c.content) for c in chat.stream("hi")) == "fine now"
        assert len(server.chat_requests()) == 2


def test_fault_kinds_map_to_typed_errors(tmp_path: Path) -> None:
    with OpenAICompatibleServer() as server:
        settings = make_test_settings(tmp_path, base_url=server.base_url,
                                      llm={"max_retries": 0})
        chat = LLMGateway(settings.llm).chat_model()
        server.enqueue(Fault(malformed=True))
        with pytest.raises(MalformedResponseError):
            chat.invoke("hi")
        server.enqueue(Fault(truncate=True))  # the responder's reply (an echo), cut off
        with pytest.raises(ProviderUnavailableError):
            chat.invoke("hi")


def test_fault_injection_is_seeded_and_counts_what_it_injected() -> None:
    first, second = FaultyLLM(rate=0.3, seed=5), FaultyLLM(rate=0.3, seed=5)
    draws = [first.draw() for _ in range(200)]
    assert draws == [second.draw() for _ in range(200)]
    assert first.faulted == sum(d is not None for d in draws)
    assert 40 <= first.faulted <= 80
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FaultyLLM(kinds=["gremlins"])
