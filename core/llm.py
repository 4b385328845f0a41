"""The LLM gateway: one path for every model call.

`LLMGateway` builds the chat model (`chat_model()`, a ChatOpenAI subclass for any
OpenAI-compatible base URL), the DSPy LM (`dspy_lm()`, a `dspy.BaseLM` adapter that sends
DSPy's messages through that same chat model) and embeddings (`embed()`). Every call, whichever
door it comes in by, shares:

- the retry policy of `ragloom.core.retry` (the SDK's own retries are off),
- error mapping to `ragloom.core.errors` (client exceptions never escape raw),
- the `Ledger` (attempts, tokens, cost, latency, node) and one structlog line per call,
- the optional response cache (`settings.cache`), whose hits are ledgered with 0 attempts.

Importing this module imports neither langchain_openai, openai nor dspy: they load on first use.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from ragloom.core.budget import CallRecord, Ledger, active_ledgers
from ragloom.core.errors import (
    ConfigError,
    MalformedResponseError,
    ProviderUnavailableError,
    RagloomError,
)
from ragloom.core.logging import register_secret
from ragloom.core.pricing import cost_usd
from ragloom.core.retry import API_KEY_FIX, RetryPolicy, code_of, map_openai_error

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import ChatGenerationChunk, ChatResult

    from ragloom.core.settings import LLMSettings

log = structlog.get_logger(__name__)

T = TypeVar("T")
# Distinguishes otherwise identical requests in the cache (DSPy's rollout_id sets it).
_CACHE_SALT: ContextVar[str | None] = ContextVar("ragloom_cache_salt", default=None)
PLACEHOLDER_KEY = "not-needed"  # local OpenAI-compatible servers accept any key


class ResponseCache:
    """Chat responses keyed by (model, messages, params): in memory (LRU), or in SQLite.

    Thread-safe; shared by sync and async calls. Values are JSON (LangChain message dicts).
    """

    def __init__(self, path: Path | str | None = None, *, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._memory: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, "
                             "value TEXT NOT NULL, created REAL NOT NULL)")
            self._db.commit()

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached value for `key`, or None."""
        with self._lock:
            if self._db is not None:
                row = self._db.execute("SELECT value FROM responses WHERE key = ?",
                                       (key,)).fetchone()
                return json.loads(row[0]) if row else None
            raw = self._memory.get(key)
            if raw is None:
                return None
            self._memory.move_to_end(key)
            return json.loads(raw)  # type: ignore[no-any-return]

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store `value` under `key`."""
        raw = json.dumps(value, default=str)
        with self._lock:
            if self._db is not None:
                self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)",
                                 (key, raw, time.time()))
                self._db.commit()
                return
            self._memory[key] = raw
            self._memory.move_to_end(key)
            while len(self._memory) > self.max_entries:
                self._memory.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            if self._db is not None:
                return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
            return len(self._memory)


@contextmanager
def cache_salt(salt: object) -> Iterator[None]:
    """Calls inside the block get cache entries of their own (None: the shared ones)."""
    token = _CACHE_SALT.set(None if salt is None else str(salt))
    try:
        yield
    finally:
        _CACHE_SALT.reset(token)


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


def _node(run_manager: Any) -> str | None:
    node = structlog.contextvars.get_contextvars().get("node")
    if node:
        return str(node)
    metadata = getattr(run_manager, "metadata", None) or {}
    if not metadata.get("langgraph_node"):
        # Streaming paths get no run manager; LangGraph's node config is in the context.
        from langchain_core.runnables.config import var_child_runnable_config

        metadata = (var_child_runnable_config.get() or {}).get("metadata") or {}
    found = metadata.get("langgraph_node")
    return str(found) if found else None


class LLMGateway:
    """One path for every chat, DSPy and embedding call (see module docstring).

    `ledger` collects every call (a fresh one by default); `clock`, `sleep` and `asleep` are
    injectable for tests; `cache` overrides the cache built from `settings.cache`.
    """

    def __init__(
        self,
        settings: LLMSettings,
        *,
        ledger: Ledger | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        cache: ResponseCache | None = None,
    ) -> None:
        self.settings = settings
        self.ledger = ledger if ledger is not None else Ledger()
        self.clock = clock
        self.policy = RetryPolicy(settings.max_retries, settings.deadline, clock=clock,
                                  sleep=sleep, asleep=asleep, operation="llm")
        if cache is None and settings.cache:
            cache = ResponseCache(settings.cache_path)
        self.cache = cache
        self._chat: BaseChatModel | None = None
        self._clients: dict[str, Any] = {}
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

    def chat_model(self, **overrides: Any) -> BaseChatModel:
        """The gateway's ChatOpenAI (shared when no overrides are given)."""
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
        }
        params.update(overrides)
        chat = GatewayChatOpenAI(gateway=self, **params)
        if not overrides:
            self._chat = chat
        return chat

    def dspy_lm(self, **overrides: Any) -> Any:
        """A `dspy.BaseLM` over `chat_model(**overrides)`: same retries, ledger, logs, cache."""
        from ragloom.core.dspy_lm import GatewayLM

        chat = self.chat_model(**overrides)
        return GatewayLM(chat, model=str(overrides.get("model", self.settings.model)))

    # -- shared plumbing -----------------------------------------------------------------------

    def attempt_timeout(self, started: float) -> float:
        """Per-attempt timeout: the configured one, cut to what is left of the deadline."""
        remaining = self.policy.remaining(started)
        if remaining is None:
            return self.settings.timeout
        return max(0.05, min(self.settings.timeout, remaining))

    @staticmethod
    def _mapped(fn: Callable[[], T]) -> T:
        try:
            return fn()
        except RagloomError:
            raise
        except Exception as exc:
            raise map_openai_error(exc) from exc

    @staticmethod
    async def _amapped(fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except RagloomError:
            raise
        except Exception as exc:
            raise map_openai_error(exc) from exc

    def _record(
        self,
        *,
        kind: str,
        usage: _Usage,
        attempts: int,
        started: float,
        node: str | None,
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
        record = CallRecord(
            model=usage.model, kind=kind, attempts=attempts, tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out, cost_usd=cost,
            latency_ms=round((self.clock() - started) * 1000, 2), node=node, cached=cached,
            ok=ok, error=code_of(error),
        )
        for ledger in {id(x): x for x in (self.ledger, *active_ledgers())}.values():
            ledger.record(record)
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
        params["cache_salt"] = _CACHE_SALT.get()
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
        started = self.clock()
        result = self._from_cache(key)
        if result is not None:
            self._record(kind="chat", usage=self._result_usage(chat, result), attempts=0,
                         started=started, node=_node(run_manager), cached=True)
        return result

    def _generate(
        self,
        chat: Any,
        attempt_fn: Callable[[float], ChatResult],
        messages: Sequence[BaseMessage],
        stop: Any,
        kwargs: dict[str, Any],
        run_manager: Any,
    ) -> ChatResult:
        key = self._cache_key(chat, messages, stop, kwargs)
        if (hit := self._cached_result(chat, key, run_manager)) is not None:
            return hit
        started, attempts, node = self.clock(), 0, _node(run_manager)
        try:
            for attempt in self.policy.retrying():
                with attempt:
                    attempts += 1
                    result = self._mapped(lambda: attempt_fn(self.attempt_timeout(started)))
        except RagloomError as exc:
            self._record(kind="chat", usage=_Usage(str(chat.model_name)), attempts=attempts,
                         started=started, node=node, error=exc)
            raise
        self._record(kind="chat", usage=self._result_usage(chat, result), attempts=attempts,
                     started=started, node=node)
        self._to_cache(key, result)
        return result

    async def _agenerate(
        self,
        chat: Any,
        attempt_fn: Callable[[float], Awaitable[ChatResult]],
        messages: Sequence[BaseMessage],
        stop: Any,
        kwargs: dict[str, Any],
        run_manager: Any,
    ) -> ChatResult:
        key = self._cache_key(chat, messages, stop, kwargs)
        if (hit := self._cached_result(chat, key, run_manager)) is not None:
            return hit
        started, attempts, node = self.clock(), 0, _node(run_manager)
        try:
            async for attempt in self.policy.async_retrying():
                with attempt:
                    attempts += 1
                    result = await self._amapped(
                        lambda: attempt_fn(self.attempt_timeout(started)))
        except RagloomError as exc:
            self._record(kind="chat", usage=_Usage(str(chat.model_name)), attempts=attempts,
                         started=started, node=node, error=exc)
            raise
        self._record(kind="chat", usage=self._result_usage(chat, result), attempts=attempts,
                     started=started, node=node)
        self._to_cache(key, result)
        return result

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
        if run_manager is not None:
            run_manager.on_llm_new_token(chunk.text, chunk=chunk)
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

    def _stream(
        self,
        chat: Any,
        attempt_fn: Callable[[float], Iterator[ChatGenerationChunk]],
        messages: Sequence[BaseMessage],
        stop: Any,
        kwargs: dict[str, Any],
        run_manager: Any,
    ) -> Iterator[ChatGenerationChunk]:
        key = self._cache_key(chat, messages, stop, kwargs)
        if (hit := self._cached_chunk(chat, key, run_manager)) is not None:
            yield hit
            return
        started, attempts, node = self.clock(), 0, _node(run_manager)
        usage = _Usage(str(chat.model_name))
        try:
            for attempt in self.policy.retrying():
                with attempt:
                    attempts += 1
                    iterator = attempt_fn(self.attempt_timeout(started))
                    first = self._mapped(functools.partial(next, iterator, None))
        except RagloomError as exc:
            self._record(kind="chat", usage=usage, attempts=attempts, started=started,
                         node=node, error=exc, stream=True)
            raise
        chunks: list[ChatGenerationChunk] = []
        error: BaseException | None = None
        try:
            # Past the first chunk a retry would repeat tokens: later failures are not retried.
            while first is not None:
                usage.read_message(first.message)
                chunks.append(first)
                yield first
                first = self._mapped(functools.partial(next, iterator, None))
            _check_finished(chunks)
        except RagloomError as exc:
            error = exc
            raise
        finally:
            self._record(kind="chat", usage=usage, attempts=attempts, started=started,
                         node=node, error=error, stream=True)
        self._store_stream(key, chunks)

    async def _astream(
        self,
        chat: Any,
        attempt_fn: Callable[[float], AsyncIterator[ChatGenerationChunk]],
        messages: Sequence[BaseMessage],
        stop: Any,
        kwargs: dict[str, Any],
        run_manager: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        key = self._cache_key(chat, messages, stop, kwargs)
        if (hit := self._cached_chunk(chat, key, run_manager)) is not None:
            yield hit
            return
        started, attempts, node = self.clock(), 0, _node(run_manager)
        usage = _Usage(str(chat.model_name))
        try:
            async for attempt in self.policy.async_retrying():
                with attempt:
                    attempts += 1
                    iterator = attempt_fn(self.attempt_timeout(started))
                    first = await self._amapped(functools.partial(anext, iterator, None))
        except RagloomError as exc:
            self._record(kind="chat", usage=usage, attempts=attempts, started=started,
                         node=node, error=exc, stream=True)
            raise
        chunks: list[ChatGenerationChunk] = []
        error: BaseException | None = None
        try:
            while first is not None:
                usage.read_message(first.message)
                chunks.append(first)
                yield first
                first = await self._amapped(functools.partial(anext, iterator, None))
            _check_finished(chunks)
        except RagloomError as exc:
            error = exc
            raise
        finally:
            self._record(kind="chat", usage=usage, attempts=attempts, started=started,
                         node=node, error=error, stream=True)
        self._store_stream(key, chunks)

    # -- embeddings ----------------------------------------------------------------------------

    def _client(self, kind: str) -> Any:
        if kind not in self._clients:
            import openai

            cls = openai.AsyncOpenAI if kind == "async" else openai.OpenAI
            self._clients[kind] = cls(base_url=self.settings.base_url, api_key=self.api_key(),
                                      timeout=self.settings.timeout, max_retries=0)
        return self._clients[kind]

    @staticmethod
    def _embed_params(model: str, texts: Sequence[str], dimensions: int | None) -> dict[str, Any]:
        params: dict[str, Any] = {"model": model, "input": list(texts)}
        if dimensions is not None:
            params["dimensions"] = dimensions
        return params

    def _embed_result(
        self, response: Any, texts: Sequence[str], model: str, attempts: int, started: float
    ) -> list[list[float]]:
        data = sorted(getattr(response, "data", None) or [], key=lambda d: d.index)
        if len(data) != len(texts):
            raise MalformedResponseError(
                f"embeddings: asked for {len(texts)} vectors, got {len(data)}")
        usage = _Usage(model)
        usage.tokens_in = int(getattr(getattr(response, "usage", None), "prompt_tokens", 0) or 0)
        self._record(kind="embed", usage=usage, attempts=attempts, started=started,
                     node=_node(None))
        return [list(map(float, d.embedding)) for d in data]

    def embed(
        self, texts: Sequence[str], *, model: str | None = None, dimensions: int | None = None
    ) -> list[list[float]]:
        """Embed `texts` via the OpenAI-compatible `/embeddings` endpoint (retried, ledgered)."""
        if not texts:
            return []
        name = model or self.settings.model
        params = self._embed_params(name, texts, dimensions)
        client = self._client("sync")
        started, attempts = self.clock(), 0
        try:
            for attempt in self.policy.retrying():
                with attempt:
                    attempts += 1
                    response = self._mapped(lambda: client.embeddings.create(
                        **params, timeout=self.attempt_timeout(started)))
            return self._embed_result(response, texts, name, attempts, started)
        except RagloomError as exc:
            self._record(kind="embed", usage=_Usage(name), attempts=attempts, started=started,
                         node=_node(None), error=exc)
            raise

    async def aembed(
        self, texts: Sequence[str], *, model: str | None = None, dimensions: int | None = None
    ) -> list[list[float]]:
        """Async `embed`."""
        if not texts:
            return []
        name = model or self.settings.model
        params = self._embed_params(name, texts, dimensions)
        client = self._client("async")
        started, attempts = self.clock(), 0
        try:
            async for attempt in self.policy.async_retrying():
                with attempt:
                    attempts += 1
                    response = await self._amapped(lambda: client.embeddings.create(
                        **params, timeout=self.attempt_timeout(started)))
            return self._embed_result(response, texts, name, attempts, started)
        except RagloomError as exc:
            self._record(kind="embed", usage=_Usage(name), attempts=attempts, started=started,
                         node=_node(None), error=exc)
            raise


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
