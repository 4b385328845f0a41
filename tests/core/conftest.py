"""Fixtures for core tests: a live local OpenAI-compatible server and a gateway pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from ragloom.core.llm import LLMGateway
from ragloom.core.settings import Settings
from ragloom.core.testing import OpenAICompatibleServer, make_test_settings
from ragloom.core.usage import UsageTracker


class FakeClock:
    """A monotonic clock that only moves when told to (or when `sleep` is called)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer() as srv:
        yield srv


@pytest.fixture
def settings(tmp_path: Path, server: OpenAICompatibleServer) -> Settings:
    return make_test_settings(
        tmp_path, base_url=server.base_url,
        llm={"model": "gpt-4o-mini", "timeout": 2.0, "max_retries": 4, "deadline": 10.0},
    )


async def _no_asleep(seconds: float) -> None:
    return None


@pytest.fixture
def gateway(settings: Settings) -> LLMGateway:
    """A gateway on the live server whose backoff waits are skipped (the clock is real)."""
    return LLMGateway(settings.llm, usage=UsageTracker(), sleep=lambda seconds: None,
                      asleep=_no_asleep)


@pytest.fixture(autouse=True)
def _default_structlog() -> Iterator[None]:
    """Each test starts and ends with structlog's defaults (configure_logging is global)."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
    import logging

    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == "ragloom-structlog":
            root.removeHandler(handler)


def chat_bodies(server: OpenAICompatibleServer) -> list[dict[str, Any]]:
    """The JSON bodies of the chat requests the server saw."""
    return [r.json or {} for r in server.chat_requests()]
