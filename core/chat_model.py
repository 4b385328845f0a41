"""`GatewayChatOpenAI`: ChatOpenAI whose every call goes through the LLM gateway.

Imported lazily by `ragloom.core.llm` (it imports langchain_openai); it imports nothing of the
gateway's (the gateway is handed in, typed by the `ChatCalls` protocol), so imports go one way.
The SDK's own retries are off (`max_retries=0`). `_generate`, `_agenerate`, `_stream` and
`_astream` are the extension points LangChain gives chat-model implementers; each hands one
request of ChatOpenAI's to the gateway's single implementation of a call (retries, typed errors,
usage, log line, cache). Streams are retried only before their first chunk, so a consumer never
sees a token twice. Async requests go to the running loop's client through the public
`root_async_client` / `async_client` fields, set once by the gateway (never rewritten per call).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, Protocol, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import Field


class ChatCalls(Protocol):
    """What the chat model needs of the gateway (`ragloom.core.llm.LLMGateway`)."""

    def generate(self, chat: Any, attempt_fn: Callable[[float], ChatResult],
                 messages: Sequence[BaseMessage], stop: Any, kwargs: dict[str, Any],
                 run_manager: Any) -> ChatResult: ...

    async def agenerate(self, chat: Any, attempt_fn: Callable[[float], Awaitable[ChatResult]],
                        messages: Sequence[BaseMessage], stop: Any, kwargs: dict[str, Any],
                        run_manager: Any) -> ChatResult: ...

    def stream(self, chat: Any, attempt_fn: Callable[[float], Iterator[ChatGenerationChunk]],
               messages: Sequence[BaseMessage], stop: Any, kwargs: dict[str, Any],
               run_manager: Any) -> Iterator[ChatGenerationChunk]: ...

    def astream(self, chat: Any,
                attempt_fn: Callable[[float], AsyncIterator[ChatGenerationChunk]],
                messages: Sequence[BaseMessage], stop: Any, kwargs: dict[str, Any],
                run_manager: Any) -> AsyncIterator[ChatGenerationChunk]: ...


class GatewayChatOpenAI(ChatOpenAI):
    """ChatOpenAI routed through `LLMGateway` (retries, typed errors, usage, logs, cache)."""

    gateway: Any = Field(default=None, exclude=True)

    @property
    def _gw(self) -> ChatCalls:
        return cast(ChatCalls, self.gateway)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        def attempt(timeout: float) -> ChatResult:
            return ChatOpenAI._generate(self, messages, stop, run_manager, timeout=timeout,
                                        **kwargs)

        return self._gw.generate(self, attempt, messages, stop, kwargs, run_manager)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        def attempt(timeout: float) -> Awaitable[ChatResult]:
            return ChatOpenAI._agenerate(self, messages, stop, run_manager, timeout=timeout,
                                         **kwargs)

        return await self._gw.agenerate(self, attempt, messages, stop, kwargs, run_manager)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        def attempt(timeout: float) -> Iterator[ChatGenerationChunk]:
            return ChatOpenAI._stream(self, messages, stop, run_manager, timeout=timeout,
                                      **kwargs)

        return self._gw.stream(self, attempt, messages, stop, kwargs, run_manager)

    def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        def attempt(timeout: float) -> AsyncIterator[ChatGenerationChunk]:
            return ChatOpenAI._astream(self, messages, stop, run_manager, timeout=timeout,
                                       **kwargs)

        return self._gw.astream(self, attempt, messages, stop, kwargs, run_manager)
