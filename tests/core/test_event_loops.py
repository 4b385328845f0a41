"""One gateway used from several event loops in turn (several `asyncio.run` calls)."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
    assert gateway.ledger.attempts == gateway.ledger.calls == 15
