"""The LLM gateway: one path for every model call.

`LLMGateway` builds the chat model (`chat_model()`, a ChatOpenAI subclass for any
OpenAI-compatible base URL), the DSPy LM (`dspy_lm()`, a `dspy.BaseLM` adapter that sends
DSPy's messages through that same chat model) and embeddings (`embed()`). Every call, whichever
door it comes in by, shares:

- the retry policy of `ragloom.core.retry` (the SDK's own retries are off),
- error mapping to `ragloom.core.errors` (client exceptions never escape raw),
- the usage tracker (`ragloom.core.usage`: attempts, tokens, cost, latency per run and node)
  and one structlog line per call,
- the optional response cache (`settings.cache`), whose hits are recorded with 0 attempts,
- one async client per event loop (`ragloom.core.openai_clients`), closed with its loop.

What a call does is written once, as steps (`ragloom.core.retry`), and driven sync or async.
Imports go one way: this module imports `chat_model` / `dspy_lm` (lazily) and they import
neither it nor each other's internals. Importing this module imports neither
langchain_openai, openai nor dspy: they load on first use.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from ragloom.core.errors import (
    ConfigError,
    MalformedResponseError,
    ProviderUnavailableError,
    RagloomError,
)
from ragloom.core.logging import register_secret
from ragloom.core.loops import PerLoop
from ragloom.core.openai_clients import (
    DEFAULT_TRANSPORT,
    AioChatClient,
    AsyncClientProxy,
    LeanCompletions,
    Transport,
    aiohttp_available,
    async_http_client,
)
from ragloom.core.pricing import cost_usd
from ragloom.core.response_cache import ResponseCache, cache_salt, current_salt
from ragloom.core.retry import (
    API_KEY_FIX,
    Call,
    Emit,
    Next,
    RetryPolicy,
    Steps,
    Tally,
    arun,
    astream,
    code_of,
    iterate,
    mapped,
    run,
)
from ragloom.core.usage import GATEWAY_TAG, CallRecord, UsageTracker, active_trackers

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import ChatGenerationChunk, ChatResult

    from ragloom.core.settings import LLMSettings

__all__ = ["PLACEHOLDER_KEY", "LLMGateway", "ResponseCache", "cache_salt", "dspy_lm_for"]

log = structlog.get_logger(__name__)

PLACEHOLDER_KEY = "not-needed"  # local OpenAI-compatible servers accept any key
# overrides of chat_model() that need clients of their own
_CLIENT_PARAMS = frozenset({"base_url", "api_key", "openai_api_base", "openai_api_key",
                            "http_client", "http_async_client", "default_headers",
                            "organization", "openai_proxy"})


class _Usage:
    """Tokens and model name read from one response (or accumulated over a stream)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.tokens_in = 0
        self.tokens_out = 0

    def read_message(self, message: Any) -> None:
        usage = getattr(message, "usage_metadata", None)
        if usage:
            self.tokens_in += int(usage.get("input_tokens") or 0)
            self.tokens_out += int(usage.get("output_tokens") or 0)
        name = (getattr(message, "response_metadata", None) or {}).get("model_name")
        if name:
            self.model = str(name)


def _check_finished(chunks: list[Any]) -> None:
    """A stream that ends without a finish_reason was cut off (the connection dropped)."""
    for chunk in chunks:
        info = {**(chunk.generation_info or {}), **(chunk.message.response_metadata or {})}
        if info.get("finish_reason"):
            return
    raise ProviderUnavailableError(
        f"the provider's stream ended early after {len(chunks)} chunk(s) without finishing"
    )


def _completion_usage(response: dict[str, Any], model: str) -> _Usage:
    usage = _Usage(str(response.get("model") or model))
    counts = response.get("usage") or {}
    usage.tokens_in = int(counts.get("prompt_tokens") or 0)
    usage.tokens_out = int(counts.get("completion_tokens") or 0)
    return usage


def _where(run_manager: Any) -> tuple[str | None, str | None]:
    """(graph node, run id) of the current call, from the log context or LangGraph's config."""
    bound = structlog.contextvars.get_contextvars()
    node = bound.get("node")
    run_id = bound.get("run_id")
    run_id = str(run_id) if run_id else None
    if node:
        return str(node), run_id
    metadata = getattr(run_manager, "metadata", None) or {}
    if not metadata.get("langgraph_node"):
        # Streaming paths get no run manager; LangGraph's node config is in the context.
        from langchain_core.runnables.config import var_child_runnable_config

        metadata = (var_child_runnable_config.get() or {}).get("metadata") or {}
    found = metadata.get("langgraph_node")
    return (str(found) if found else None), run_id


def _next(iterator: Any) -> Steps[Any]:
    return (yield Next(iterator))


class LLMGateway:
    """One path for every chat, DSPy and embedding call (see module docstring).

    `usage` aggregates every call (a fresh tracker by default); `clock`, `sleep` and `asleep`
    are injectable for tests; `cache` overrides the cache built from `settings.cache`;
    `transport` picks the async HTTP client (see `ragloom.core.openai_clients`).
    """

    def __init__(
        self,
        settings: LLMSettings,
        *,
        usage: UsageTracker | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        cache: ResponseCache | None = None,
        transport: Transport = DEFAULT_TRANSPORT,
    ) -> None:
        self.settings = settings
        self.usage = usage if usage is not None else UsageTracker()
        self.clock = clock
        self.policy = RetryPolicy(settings.max_retries, settings.deadline, clock=clock,
                                  sleep=sleep, asleep=asleep, operation="llm")
        if cache is None and settings.cache:
            cache = ResponseCache(settings.cache_path)
        self.cache = cache
        self.transport = transport
        self._chat: BaseChatModel | None = None
        self._sync_client: Any = None
        self.async_clients: PerLoop[Any] = PerLoop(self._new_async_client)
        self.direct_clients: PerLoop[Any] = PerLoop(self._new_direct_client)
        if settings.api_key is not None:
            register_secret(settings.api_key.get_secret_value())

    # -- construction --------------------------------------------------------------------------

    def api_key(self) -> str:
        """The key to send: the configured one, a placeholder for a local server, or an error."""
        if self.settings.api_key is not None:
            return self.settings.api_key.get_secret_value()
        if self.settings.base_url:
            return PLACEHOLDER_KEY
        raise ConfigError("the openai engine needs an API key or a base URL",
                          setting="llm.api_key", fix=API_KEY_FIX)

    def _new_async_client(self) -> Any:
        import openai

        return openai.AsyncOpenAI(base_url=self.settings.base_url, api_key=self.api_key(),
                                  timeout=self.settings.timeout, max_retries=0,
                                  http_client=async_http_client(self.transport))

    def _new_direct_client(self) -> Any:
        if self.transport == "aiohttp" and aiohttp_available() and self.settings.base_url:
            return AioChatClient(self.settings.base_url, self.api_key(), self.settings.timeout)
        return self._new_async_client()  # the SDK's post(), same signature

    def sync_client(self) -> Any:
        """The gateway's `openai.OpenAI` client (embeddings; made on first use)."""
        if self._sync_client is None:
            import openai

            self._sync_client = openai.OpenAI(base_url=self.settings.base_url,
                                              api_key=self.api_key(),
                                              timeout=self.settings.timeout, max_retries=0)
        return self._sync_client

    def chat_model(self, **overrides: Any) -> BaseChatModel:
        """The gateway's ChatOpenAI (shared when no overrides are given).

        Its async calls go to the running loop's client (`async_clients`), so one chat model
        serves any number of event loops and threads.
        """
        if not overrides and self._chat is not None:
            return self._chat
        from ragloom.core.chat_model import GatewayChatOpenAI

        params: dict[str, Any] = {
            "model": self.settings.model,
            "base_url": self.settings.base_url,
            "api_key": self.api_key(),
            "timeout": self.settings.timeout,
            "max_retries": 0,
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
            "stream_usage": True,
            "tags": [GATEWAY_TAG],
        }
        if not _CLIENT_PARAMS.intersection(overrides):
            params["root_client"] = self.sync_client()
            params["client"] = LeanCompletions(self.sync_client, asynchronous=False)
            params["root_async_client"] = AsyncClientProxy(self.async_clients)
            params["async_client"] = LeanCompletions(self.async_clients.get, asynchronous=True)
        params.update(overrides)
        chat = GatewayChatOpenAI(gateway=self, **params)
        if not overrides:
            self._chat = chat
        return chat

    def dspy_lm(self, **overrides: Any) -> Any:
        """A `dspy.BaseLM` over `chat_model(**overrides)`: same retries, usage, logs, cache."""
        from ragloom.core.dspy_lm import GatewayLM

        chat = self.chat_model(**overrides)
        direct = None if _CLIENT_PARAMS.intersection(overrides) else self
        return GatewayLM(chat, model=str(overrides.get("model", self.settings.model)),
                         direct=direct)

    def close(self) -> None:
        """Close the sync client (async clients close with their event loops)."""
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None

    # -- shared plumbing -----------------------------------------------------------------------

    def attempt_timeout(self, started: float) -> float:
        """Per-attempt timeout: the configured one, cut to what is left of the deadline."""
        remaining = self.policy.remaining(started)
        if remaining is None:
            return self.settings.timeout
        return max(0.05, min(self.settings.timeout, remaining))

    def _record(
        self,
        *,
        kind: str,
        usage: _Usage,
        attempts: int,
        started: float,
        where: tuple[str | None, str | None],
        cached: bool = False,
        error: BaseException | None = None,
        stream: bool = False,
    ) -> CallRecord:
        ok = error is None
        if cached:
            cost: float | None = 0.0
        elif ok:
            cost = cost_usd(usage.model, usage.tokens_in, usage.tokens_out)
        else:
            cost = None
        node, run_id = where
        record = CallRecord(
            model=usage.model, kind=kind, attempts=attempts, tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out, cost_usd=cost,
            latency_ms=round((self.clock() - started) * 1000, 2), node=node, run_id=run_id,
            cached=cached, ok=ok, error=code_of(error),
        )
        self.usage.record(record)
        scoped = active_trackers()
        for index, tracker in enumerate(scoped):
            if tracker is not self.usage and tracker not in scoped[:index]:
                tracker.record(record)
        fields = {
            "model": record.model, "kind": kind, "attempt": attempts,
            "latency_ms": record.latency_ms, "tokens_in": record.tokens_in,
            "tokens_out": record.tokens_out, "cost_usd": record.cost_usd, "cached": cached,
            "stream": stream, "node": node,
        }
        if ok:
            log.info("llm.call", **fields)
        else:
            log.warning("llm.error", error=record.error, **fields)
        return record

    # -- chat (called by GatewayChatOpenAI) ----------------------------------------------------

    def _cache_key(
        self, chat: Any, messages: Sequence[BaseMessage], stop: Any, kwargs: dict[str, Any]
    ) -> str | None:
        if self.cache is None:
            return None
        from langchain_core.messages import message_to_dict

        params = {k: v for k, v in kwargs.items() if k not in ("timeout", "stream_usage")}
        params["cache_salt"] = current_salt()
        payload = {
            "model": chat.model_name, "temperature": chat.temperature,
            "max_tokens": chat.max_tokens, "stop": stop, "params": params,
            "messages": [message_to_dict(m) for m in messages],
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _from_cache(self, key: str | None) -> ChatResult | None:
        if key is None or self.cache is None:
            return None
        hit = self.cache.get(key)
        if hit is None:
            return None
        from langchain_core.messages import messages_from_dict
        from langchain_core.outputs import ChatGeneration, ChatResult

        messages = messages_from_dict([g["message"] for g in hit["generations"]])
        generations = [ChatGeneration(message=m, generation_info=g.get("generation_info"))
                       for m, g in zip(messages, hit["generations"], strict=True)]
        return ChatResult(generations=generations, llm_output=hit.get("llm_output"))

    def _to_cache(self, key: str | None, result: ChatResult) -> None:
        if key is None or self.cache is None:
            return
        from langchain_core.messages import message_to_dict

        self.cache.put(key, {
            "generations": [{"message": message_to_dict(g.message),
                             "generation_info": g.generation_info} for g in result.generations],
            "llm_output": result.llm_output,
        })

    def _result_usage(self, chat: Any, result: ChatResult) -> _Usage:
        usage = _Usage(str(chat.model_name))
        for generation in result.generations[:1]:
            usage.read_message(generation.message)
        llm_output = result.llm_output or {}
        if not usage.tokens_in and isinstance(llm_output.get("token_usage"), dict):
            usage.tokens_in = int(llm_output["token_usage"].get("prompt_tokens") or 0)
            usage.tokens_out = int(llm_output["token_usage"].get("completion_tokens") or 0)
        if llm_output.get("model_name"):
            usage.model = str(llm_output["model_name"])
        return usage

    def _cached_result(self, chat: Any, key: str | None, run_manager: Any) -> ChatResult | None:
        if key is None:
            return None
        started = self.clock()
        result = self._from_cache(key)
        if result is not None:
            self._record(kind="chat", usage=self._result_usage(chat, result), attempts=0,
                         started=started, where=_where(run_manager), cached=True)
        return result

    def _chat_steps(
        self,
        chat: Any,
        attempt_fn: Callable[[float], Any],
        messages: Sequence[BaseMessage],
        stop: Any,
        kwargs: dict[str, Any],
        run_manager: Any,
    ) -> Steps[ChatResult]:
        """One chat call: cache, retries, mapping, usage, log line (sync and async alike)."""
        key = self._cache_key(chat, messages, stop, kwargs)
        if (hit := self._cached_result(chat, key, run_manager)) is not None:
            return hit
        started, where, tally = self.clock(), _where(run_manager), Tally()

        def attempt() -> Steps[ChatResult]:
            return (yield Call(lambda: attempt_fn(self.attempt_timeout(started))))

        try:
            result = yield from self.policy.steps(attempt, tally)
        except RagloomError as exc:
            self._record(kind="chat", usage=_Usage(str(chat.model_name)),
                         attempts=tally.attempts, started=started, where=where, error=exc)
            raise
        self._record(kind="chat", usage=self._result_usage(chat, result),
                     attempts=tally.attempts, started=started, where=where)
        self._to_cache(key, result)
        return result

    def _stream_steps(
        self,
        chat: Any,
        attempt_fn: Callable[[float], Any],
        messages: Sequence[BaseMessage],
        stop: Any,
        kwargs: dict[str, Any],
        run_manager: Any,
    ) -> Steps[None]:
        """One streamed chat call; retried only before its first chunk (no token twice)."""
        key = self._cache_key(chat, messages, stop, kwargs)
        if (hit := self._cached_chunk(chat, key, run_manager)) is not None:
            if run_manager is not None:
                yield Call(lambda: run_manager.on_llm_new_token(hit.text, chunk=hit))
            yield Emit(hit)
            return
        started, where, tally = self.clock(), _where(run_manager), Tally()
        usage = _Usage(str(chat.model_name))

        def attempt() -> Steps[tuple[Any, Any]]:
            iterator = attempt_fn(self.attempt_timeout(started))
            first = yield Next(iterator)
            if first is None:  # closed before any chunk: nothing reached the consumer, retry
                raise ProviderUnavailableError("the provider's stream ended before its first chunk")
            return iterator, first

        try:
            iterator, first = yield from self.policy.steps(attempt, tally)
        except RagloomError as exc:
            self._record(kind="chat", usage=usage, attempts=tally.attempts, started=started,
                         where=where, error=exc, stream=True)
            raise
        chunks: list[ChatGenerationChunk] = []
        error: BaseException | None = None
        try:
            while first is not None:
                usage.read_message(first.message)
                chunks.append(first)
                yield Emit(first)
                first = yield from mapped(_next(iterator))
            _check_finished(chunks)
        except RagloomError as exc:
            error = exc
            raise
        finally:
            self._record(kind="chat", usage=usage, attempts=tally.attempts, started=started,
                         where=where, error=error, stream=True)
        self._store_stream(key, chunks)

    def _cached_chunk(self, chat: Any, key: str | None, run_manager: Any) -> Any:
        result = self._cached_result(chat, key, run_manager)
        if result is None:
            return None
        from langchain_core.messages import AIMessageChunk
        from langchain_core.outputs import ChatGenerationChunk

        message = result.generations[0].message
        tool_chunks: list[Any] = [
            {"name": c["name"], "args": json.dumps(c["args"]), "id": c.get("id"), "index": i}
            for i, c in enumerate(getattr(message, "tool_calls", None) or [])
        ]
        chunk = ChatGenerationChunk(message=AIMessageChunk(
            content=message.content, tool_call_chunks=tool_chunks,
            usage_metadata=getattr(message, "usage_metadata", None),
            response_metadata=message.response_metadata,
        ))
        return chunk

    def _store_stream(self, key: str | None, chunks: list[ChatGenerationChunk]) -> None:
        if key is None or not chunks:
            return
        from langchain_core.messages import message_chunk_to_message
        from langchain_core.outputs import ChatGeneration, ChatResult

        total = chunks[0]
        for chunk in chunks[1:]:
            total = total + chunk
        message = message_chunk_to_message(total.message)
        self._to_cache(key, ChatResult(generations=[ChatGeneration(message=message)]))

    def generate(self, chat: Any, attempt_fn: Callable[[float], ChatResult],
                 messages: Sequence[BaseMessage], stop: Any, kwargs: dict[str, Any],
                 run_manager: Any) -> ChatResult:
        """`chat._generate` through the gateway (`attempt_fn(timeout)` makes one request)."""
        steps = self._chat_steps(chat, attempt_fn, messages, stop, kwargs, run_manager)
        return run(steps, self.policy.sleep)

    async def agenerate(self, chat: Any, attempt_fn: Callable[[float], Awaitable[ChatResult]],
                        messages: Sequence[BaseMessage], stop: Any, kwargs: dict[str, Any],
                        run_manager: Any) -> ChatResult:
        """`chat._agenerate` through the gateway."""
        steps = self._chat_steps(chat, attempt_fn, messages, stop, kwargs, run_manager)
        return await arun(steps, self.policy.asleep)

    def stream(self, chat: Any, attempt_fn: Callable[[float], Iterator[ChatGenerationChunk]],
               messages: Sequence[BaseMessage], stop: Any, kwargs: dict[str, Any],
               run_manager: Any) -> Iterator[ChatGenerationChunk]:
        """`chat._stream` through the gateway."""
        steps = self._stream_steps(chat, attempt_fn, messages, stop, kwargs, run_manager)
        return iterate(steps, self.policy.sleep)

    def astream(self, chat: Any,
                attempt_fn: Callable[[float], AsyncIterator[ChatGenerationChunk]],
                messages: Sequence[BaseMessage], stop: Any, kwargs: dict[str, Any],
                run_manager: Any) -> AsyncIterator[ChatGenerationChunk]:
        """`chat._astream` through the gateway."""
        steps = self._stream_steps(chat, attempt_fn, messages, stop, kwargs, run_manager)
        return astream(steps, self.policy.asleep)

    # -- direct completions (the DSPy adapter outside LangChain runs) --------------------------

    def _complete_steps(self, post: Callable[..., Any], body: dict[str, Any]) -> Steps[Any]:
        """One chat completion posted as JSON `body`; returns the provider's JSON dict.

        Same cache (own keys), retries, mapping, usage record and log line as a chat call."""
        key = None
        if self.cache is not None:
            text = json.dumps({"direct": body, "cache_salt": current_salt()}, sort_keys=True,
                              default=str)
            key = "direct:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
        model = str(body.get("model") or self.settings.model)
        where = _where(None)
        if key is not None and self.cache is not None:
            started = self.clock()
            hit = self.cache.get(key)
            if hit is not None:
                self._record(kind="chat", usage=_completion_usage(hit, model), attempts=0,
                             started=started, where=where, cached=True)
                return hit
        started, tally = self.clock(), Tally()

        def attempt() -> Steps[Any]:
            options = {"timeout": self.attempt_timeout(started)}
            return (yield Call(lambda: post("/chat/completions", body=body, options=options,
                                            cast_to=object)))

        try:
            response = yield from self.policy.steps(attempt, tally)
            if not isinstance(response, dict) or not isinstance(response.get("choices"), list):
                raise MalformedResponseError(
                    f"chat completion without choices: {str(response)[:200]}")
        except RagloomError as exc:
            self._record(kind="chat", usage=_Usage(model), attempts=tally.attempts,
                         started=started, where=where, error=exc)
            raise
        self._record(kind="chat", usage=_completion_usage(response, model),
                     attempts=tally.attempts, started=started, where=where)
        if key is not None and self.cache is not None:
            self.cache.put(key, response)
        return response

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to `/chat/completions` through the gateway; the JSON reply."""
        steps = self._complete_steps(self.sync_client().post, body)
        return run(steps, self.policy.sleep)  # type: ignore[no-any-return]

    async def acomplete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Async `complete` (on the running loop's client)."""
        steps = self._complete_steps(self.direct_clients.get().post, body)
        return await arun(steps, self.policy.asleep)  # type: ignore[no-any-return]

    # -- embeddings ----------------------------------------------------------------------------

    def _embed_steps(
        self, create: Callable[..., Any], texts: Sequence[str], model: str | None,
        dimensions: int | None,
    ) -> Steps[list[list[float]]]:
        """One embeddings request (retried, mapped, recorded); `create` is the SDK method."""
        if not texts:
            return []
        name = model or self.settings.model
        params: dict[str, Any] = {"model": name, "input": list(texts)}
        if dimensions is not None:
            params["dimensions"] = dimensions
        started, where, tally = self.clock(), _where(None), Tally()

        def attempt() -> Steps[Any]:
            return (yield Call(lambda: create(**params, timeout=self.attempt_timeout(started))))

        usage = _Usage(name)
        try:
            response = yield from self.policy.steps(attempt, tally)
            data = sorted(getattr(response, "data", None) or [], key=lambda d: d.index)
            if len(data) != len(texts):
                raise MalformedResponseError(
                    f"embeddings: asked for {len(texts)} vectors, got {len(data)}")
        except RagloomError as exc:
            self._record(kind="embed", usage=usage, attempts=tally.attempts, started=started,
                         where=where, error=exc)
            raise
        usage.tokens_in = int(getattr(getattr(response, "usage", None), "prompt_tokens", 0) or 0)
        self._record(kind="embed", usage=usage, attempts=tally.attempts, started=started,
                     where=where)
        return [list(map(float, d.embedding)) for d in data]

    def embed(
        self, texts: Sequence[str], *, model: str | None = None, dimensions: int | None = None
    ) -> list[list[float]]:
        """Embed `texts` via the OpenAI-compatible `/embeddings` endpoint (retried, recorded)."""
        if not texts:
            return []
        create = self.sync_client().embeddings.create
        return run(self._embed_steps(create, texts, model, dimensions), self.policy.sleep)

    async def aembed(
        self, texts: Sequence[str], *, model: str | None = None, dimensions: int | None = None
    ) -> list[list[float]]:
        """Async `embed` (on the running loop's client)."""
        if not texts:
            return []
        create = self.async_clients.get().embeddings.create
        return await arun(self._embed_steps(create, texts, model, dimensions),
                          self.policy.asleep)


def dspy_lm_for(llm: Any, settings: LLMSettings) -> Any:
    """The DSPy LM the `openai` engine's roles call, from what a caller passed as `llm`:
    None (a gateway built from `settings`), an `LLMGateway`, or any LangChain chat model
    (e.g. `ChatAnthropic`; it then keeps its own retry behaviour, not the gateway's)."""
    if llm is None:
        return LLMGateway(settings).dspy_lm()
    if isinstance(llm, LLMGateway):
        return llm.dspy_lm()
    from langchain_core.language_models import BaseChatModel

    if isinstance(llm, BaseChatModel):
        from ragloom.core.dspy_lm import GatewayLM

        name = getattr(llm, "model_name", None) or getattr(llm, "model", None) or "chat-model"
        return GatewayLM(llm, model=str(name))
    raise ConfigError(
        f"llm must be an LLMGateway or a LangChain chat model, not {type(llm).__name__}",
        setting="llm", fix="pass LLMGateway(settings.llm) or e.g. ChatOpenAI(...)",
    )
