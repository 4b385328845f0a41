"""One gateway used from several event loops in turn (several `asyncio.run` calls)."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ragloom.core.llm import LLMGateway
from ragloom.core.testing import OpenAICompatibleServer, make_test_settings


def test_each_event_loop_gets_working_connections(tmp_path: Path) -> None:
    with OpenAICompatibleServer(lambda request: "pong") as server:
        gateway = LLMGateway(make_test_settings(tmp_path, base_url=server.base_url).llm)
        chat = gateway.chat_model()

        async def burst() -> list[str]:
            replies = await asyncio.gather(*(chat.ainvoke("ping") for _ in range(5)))
            return [str(r.content) for r in replies]

        for _ in range(3):
            assert asyncio.run(burst()) == ["pong"] * 5
    # no retries: every call went through on its first attempt
    assert gateway.usage.attempts == gateway.usage.calls == 15


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds through /proc")
def test_no_fd_growth_across_ten_event_loops(tmp_path: Path) -> None:
    """Each loop gets one client, closed when `asyncio.run` shuts the loop down."""
    with OpenAICompatibleServer(lambda request: "pong") as server:
        gateway = LLMGateway(make_test_settings(tmp_path, base_url=server.base_url).llm)
        chat = gateway.chat_model()

        async def burst() -> int:
            replies = await asyncio.gather(*(chat.ainvoke("ping") for _ in range(8)))
            assert [r.content for r in replies] == ["pong"] * 8
            return len(gateway.async_clients)

        assert asyncio.run(burst()) == 1
        baseline = _open_fds()
        for _ in range(10):
            assert asyncio.run(burst()) == 1  # one live client: this loop's
        assert _open_fds() <= baseline
        assert len(gateway.async_clients) == 0 and gateway.async_clients.opened == 11
    assert gateway.usage.attempts == gateway.usage.calls == 88


def test_two_threads_two_loops_share_one_gateway(tmp_path: Path) -> None:
    """Concurrent loops in two threads each use their own client; no call crosses loops."""
    with OpenAICompatibleServer(lambda request: "pong") as server:
        gateway = LLMGateway(make_test_settings(tmp_path, base_url=server.base_url).llm)
        chat = gateway.chat_model()
        seen: list[Any] = []

        async def work() -> list[str]:
            out = []
            for _ in range(5):
                replies = await asyncio.gather(*(chat.ainvoke("ping") for _ in range(20)))
                out += [str(r.content) for r in replies]
                seen.append((threading.get_ident(), id(gateway.async_clients.get())))
            return out

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda _: asyncio.run(work()), range(2)))
    assert results == [["pong"] * 100] * 2
    assert gateway.usage.attempts == gateway.usage.calls == 200  # none failed, none retried
    by_thread: dict[int, set[int]] = {}
    for thread, client in seen:
        by_thread.setdefault(thread, set()).add(client)
    assert all(len(clients) == 1 for clients in by_thread.values())
    assert gateway.async_clients.opened == 2


def test_dspy_direct_clients_close_with_their_loops(tmp_path: Path) -> None:
    import dspy

    answer = "[[ ## answer ## ]]\npong\n\n[[ ## completed ## ]]"
    with OpenAICompatibleServer(lambda request: answer) as server:
        gateway = LLMGateway(make_test_settings(tmp_path, base_url=server.base_url).llm)
        lm, predict = gateway.dspy_lm(), dspy.Predict("question -> answer")

        async def burst() -> list[str]:
            with dspy.context(lm=lm):
                out = await asyncio.gather(*(predict.acall(question="ping") for _ in range(6)))
            assert len(gateway.direct_clients) == 1
            return [p.answer for p in out]

        for _ in range(3):
            assert asyncio.run(burst()) == ["pong"] * 6
        assert len(gateway.direct_clients) == 0 and gateway.direct_clients.opened == 3
    assert gateway.usage.calls == gateway.usage.attempts == 18
