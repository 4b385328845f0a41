"""`GatewayChatOpenAI`: ChatOpenAI whose every call goes through the LLM gateway.

Imported lazily by `ragloom.core.llm` (it imports langchain_openai). The SDK's own retries are off
(`max_retries=0`); the gateway's retry policy, error mapping, ledger, log line and cache wrap
`_generate`, `_agenerate`, `_stream` and `_astream`. Streams are retried only before their first
chunk, so a consumer never sees a token twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import Field, PrivateAttr

if TYPE_CHECKING:
    from ragloom.core.llm import LLMGateway

ASYNC_POOLS = 8  # connection pools per event loop


class GatewayChatOpenAI(ChatOpenAI):
    """ChatOpenAI routed through `LLMGateway` (retries, typed errors, ledger, logs, cache)."""

    gateway: Any = Field(default=None, exclude=True)
    _loop: Any = PrivateAttr(default=None)
    _pools: list[Any] = PrivateAttr(default_factory=list)
    _calls: int = PrivateAttr(default=0)

    @property
    def _gw(self) -> LLMGateway:
        return self.gateway  # type: ignore[no-any-return]

    def _bind_to_running_loop(self) -> None:
        """Use async clients of the running event loop, spreading calls over a few pools.

        langchain-openai shares one cached httpx.AsyncClient per base URL; its pooled
        connections belong to the loop that opened them, so a second `asyncio.run` in the same
        process would fail (and retry) on every reused connection. And one httpcore pool spends
        time quadratic in its connections matching requests to connections, which dominates at
        hundreds of concurrent calls; several smaller pools keep that cost down.
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            import openai

            base = self.root_async_client
            self._pools = [
                base.copy(http_client=openai.DefaultAsyncHttpxClient()) for _ in range(ASYNC_POOLS)
            ]
            self._loop = loop
        self._calls += 1
        root = self._pools[self._calls % len(self._pools)]
        # any pool of this loop serves any call, so concurrent calls may interleave these writes
        self.root_async_client = root
        self.async_client = root.chat.completions

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        def attempt(timeout: float) -> ChatResult:
            return ChatOpenAI._generate(
                self, messages, stop, run_manager, timeout=timeout, **kwargs)

        return self._gw._generate(self, attempt, messages, stop, kwargs, run_manager)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._bind_to_running_loop()

        async def attempt(timeout: float) -> ChatResult:
            return await ChatOpenAI._agenerate(
                self, messages, stop, run_manager, timeout=timeout, **kwargs)

        return await self._gw._agenerate(self, attempt, messages, stop, kwargs, run_manager)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        def attempt(timeout: float) -> Iterator[ChatGenerationChunk]:
            return ChatOpenAI._stream(self, messages, stop, run_manager, timeout=timeout, **kwargs)

        yield from self._gw._stream(self, attempt, messages, stop, kwargs, run_manager)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        self._bind_to_running_loop()

        def attempt(timeout: float) -> AsyncIterator[ChatGenerationChunk]:
            return ChatOpenAI._astream(self, messages, stop, run_manager, timeout=timeout, **kwargs)

        async for chunk in self._gw._astream(self, attempt, messages, stop, kwargs, run_manager):
            yield chunk
