"""Logging: JSON lines with bound run context, redaction of secrets, idempotent configuration."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import structlog
from pydantic import SecretStr

from ragloom.core.errors import AuthenticationError
from ragloom.core.llm import LLMGateway
from ragloom.core.logging import (
    bind_run,
    configure_logging,
    redact_text,
    register_secret,
)
from ragloom.core.testing import Fault, OpenAICompatibleServer, make_test_settings

log = structlog.get_logger("tests.core.logging")


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_bound_run_context() -> None:
    out = io.StringIO()
    configure_logging("INFO", fmt="json", stream=out)
    with bind_run(run_id="run-1", thread_id="thread-9"):
        log.info("start")
        with bind_run(node="retrieve"):
            log.info("step", hits=3)
        log.info("end")
    log.info("outside")
    start, step, end, outside = _lines(out)
    assert start["run_id"] == "run-1" and start["thread_id"] == "thread-9"
    assert "node" not in start
    assert step["node"] == "retrieve" and step["hits"] == 3 and step["run_id"] == "run-1"
    assert "node" not in end and end["event"] == "end"
    assert "run_id" not in outside
    assert {"timestamp", "level"} <= set(step)


def test_context_is_visible_and_restored() -> None:
    with bind_run(run_id="r", node="n"):
        assert structlog.contextvars.get_contextvars() == {"run_id": "r", "node": "n"}
    assert structlog.contextvars.get_contextvars() == {}


def test_level_filters() -> None:
    out = io.StringIO()
    configure_logging("WARNING", fmt="json", stream=out)
    log.info("hidden")
    log.warning("shown")
    assert [line["event"] for line in _lines(out)] == ["shown"]


def test_configuring_twice_does_not_duplicate_lines() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(fmt="json", stream=first)
    configure_logging(fmt="json", stream=second)
    log.info("once")
    logging.getLogger("some.library").warning("stdlib once")
    assert first.getvalue() == ""
    events = [line["event"] for line in _lines(second)]
    assert events == ["once", "stdlib once"]


def test_console_format_is_not_json() -> None:
    out = io.StringIO()
    configure_logging(fmt="console", stream=out)
    log.info("pretty", answer=42)
    text = out.getvalue()
    assert "pretty" in text and "answer=42" in text
    assert not text.lstrip().startswith("{")


def test_auto_format_is_json_when_not_a_tty() -> None:
    out = io.StringIO()  # isatty() is False
    configure_logging(fmt="auto", stream=out)
    log.info("auto")
    assert _lines(out)[0]["event"] == "auto"


def test_redaction_everywhere_in_the_event_dict() -> None:
    register_secret("registered-secret-value-123")
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    log.info(
        "request",
        api_key="sk-live-abcdefghijkl",
        headers={"Authorization": "Bearer abc.def.ghi", "Content-Type": "application/json"},
        note="key registered-secret-value-123 leaked into text",
        url="postgresql://ragloom:hunter2pass@db:5432/threads",
        nested=[{"password": "pw1234567"}, "Bearer tok_1234567890"],
        secret=SecretStr("hidden"),
        tokens_in=12, tokens_out=3, max_tokens=100,
    )
    text = out.getvalue()
    for leaked in ("sk-live-abcdefghijkl", "abc.def.ghi", "registered-secret-value-123",
                   "hunter2pass", "pw1234567", "tok_1234567890", "hidden"):
        assert leaked not in text, leaked
    line = _lines(out)[0]
    assert line["tokens_in"] == 12 and line["tokens_out"] == 3 and line["max_tokens"] == 100
    assert line["headers"]["Content-Type"] == "application/json"
    assert line["url"].startswith("postgresql://ragloom:")


def test_redact_text_keeps_ordinary_text() -> None:
    assert redact_text("the skeleton key opened 3 doors") == "the skeleton key opened 3 doors"
    assert "sk-abcdefgh1234" not in redact_text("use sk-abcdefgh1234 now")


def test_stdlib_logs_are_redacted_too() -> None:
    register_secret("stdlib-secret-9876")
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    logging.getLogger("httpx").warning("sent Authorization: Bearer zzz-111-222 stdlib-secret-9876")
    text = out.getvalue()
    assert "zzz-111-222" not in text and "stdlib-secret-9876" not in text
    assert _lines(out)[0]["logger"] == "httpx"


def test_exceptions_are_rendered_and_redacted() -> None:
    register_secret("exception-secret-4242")
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    try:
        raise RuntimeError("failed with exception-secret-4242")
    except RuntimeError:
        log.exception("boom")
    line = _lines(out)[0]
    assert "RuntimeError" in line["exception"]
    assert "exception-secret-4242" not in out.getvalue()


def test_gateway_logs_json_lines_and_never_the_api_key(tmp_path: Path) -> None:
    """Acceptance: JSON lines with run_id/node/attempt/latency_ms/tokens; the key never appears."""
    key = "sk-proj-acceptance-7f3a9c1e5b"
    out = io.StringIO()
    configure_logging("DEBUG", fmt="json", stream=out)
    with OpenAICompatibleServer() as server:
        settings = make_test_settings(tmp_path, base_url=server.base_url,
                                      llm={"api_key": key, "max_retries": 3})
        gateway = LLMGateway(settings.llm)
        chat = gateway.chat_model()
        # The provider echoes the key in its error (as OpenAI does for a wrong key).
        server.enqueue(
            Fault(429, retry_after=0, body={"error": {"message": f"slow down {key}"}}),
            "first answer",
        )
        with bind_run(run_id="run-42", thread_id="t-1", node="generate"):
            assert chat.invoke("hello").content == "first answer"
            list(chat.stream("streamed"))  # echo reply
            server.enqueue(
                Fault(401, body={"error": {"message": f"Incorrect API key provided: {key}"}}))
            try:
                chat.invoke("again")
            except AuthenticationError as exc:
                assert key not in str(exc)  # the typed error does not carry it either
                log.exception("call failed", error=str(exc), settings=settings.llm)
        logging.getLogger("openai").warning("client said %s", key)
        assert server.requests[0].headers["Authorization"] == f"Bearer {key}"  # it was sent
    text = out.getvalue()
    assert key not in text
    lines = _lines(out)  # every line is JSON
    calls = [line for line in lines if line["event"] == "llm.call"]
    assert len(calls) == 2
    for call in calls:
        assert call["run_id"] == "run-42" and call["node"] == "generate"
        assert {"attempt", "latency_ms", "tokens_in", "tokens_out", "cost_usd"} <= set(call)
        assert call["tokens_in"] > 0 and call["tokens_out"] > 0
    assert calls[0]["attempt"] == 2
    retry = next(line for line in lines if line["event"] == "retry")
    assert retry["attempt"] == 1 and retry["error"] == "rate_limited"
    assert any(line["event"] == "llm.error" and line["error"] == "auth" for line in lines)


def test_a_secret_too_short_to_redact_is_refused() -> None:
    import pytest

    from ragloom.core.errors import ConfigError

    with pytest.raises(ConfigError, match="too short") as info:
        register_secret("abcde", setting="llm.api_key")
    assert info.value.setting == "llm.api_key" and "abcde" not in str(info.value)
    register_secret("")  # nothing configured: nothing to refuse
    register_secret(None)


def test_http_client_loggers_only_warn(tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging("DEBUG", fmt="json", stream=out)
    for name in ("httpx", "httpx2", "httpcore", "httpcore2", "openai"):
        logging.getLogger(name).info("HTTP Request: POST http://127.0.0.1/v1 200")
        logging.getLogger(f"{name}._client").debug("send_request_headers.started")
    logging.getLogger("httpx2").warning("kept")
    with OpenAICompatibleServer() as server:
        settings = make_test_settings(tmp_path, base_url=server.base_url)
        LLMGateway(settings.llm).chat_model().invoke("hello")
    events = [line["event"] for line in _lines(out)]
    assert "kept" in events and "llm.call" in events
    assert not [e for e in events if "HTTP Request" in e or "started" in e]


EXIT_SCRIPT = """
import logging, sys, tempfile
from ragloom.core.llm import LLMGateway
from ragloom.core.logging import configure_logging
from ragloom.core.testing import OpenAICompatibleServer, make_test_settings

class ClosesLate:
    def __del__(self):  # runs while the interpreter shuts down, as HTTP clients' do
        logging.getLogger("some.client").warning("closing with Bearer abcdefgh1234")

configure_logging("DEBUG", fmt="json")
server = OpenAICompatibleServer().start()
settings = make_test_settings(tempfile.mkdtemp(), base_url=server.base_url)
print(LLMGateway(settings.llm).chat_model().invoke("hi").content)
sys.modules["__main__"].late = ClosesLate()
"""


def test_no_logging_error_tracebacks_at_exit(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "exit_check.py"
    script.write_text(EXIT_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "echo: hi"
    assert "Logging error" not in done.stderr and "Traceback" not in done.stderr
    assert '"event": "llm.call"' in done.stderr
