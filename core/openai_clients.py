"""OpenAI SDK clients for the gateway: one sync client, one async client per event loop.

An async HTTP client's pooled connections belong to the event loop that opened them, so the
gateway keeps one per loop (`ragloom.core.loops.PerLoop`: made on the loop's first call, closed
when the loop shuts down).

`AsyncClientProxy` stands in for an `openai.AsyncOpenAI` where one object must serve every loop
(ChatOpenAI's public `root_async_client` / `async_client` fields): each call resolves the
running loop's client, then the attribute path, then calls it.

`LeanCompletions` is what ChatOpenAI's `client` / `async_client` fields get: a plain (not
streamed) chat completion goes out through the SDK's public `post()` with the JSON body as
ChatOpenAI built it and comes back as the JSON dict ChatOpenAI reads anyway, skipping the SDK's
per-call request transform (a deep walk of the params against their TypedDicts, ~0.8 ms per call,
whose output equals its input for JSON data) and the pydantic response model ChatOpenAI would
dump straight back to a dict. Same HTTP client, same errors (the SDK raises them), same retries
(none: the gateway's). Streams, and params that are not plain JSON, use the SDK's `create()`.

Transport (measured in benchmarks/llm_call_cpu.py): the SDK's aiohttp client
(`openai.DefaultAioHttpClient`) when the installed openai has it, else its httpx client.
Importing this module imports no openai: it loads when a client is first made.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, Literal

from ragloom.core.loops import PerLoop

Transport = Literal["aiohttp", "httpx"]
DEFAULT_TRANSPORT: Transport = "aiohttp"


def async_http_client(transport: Transport = DEFAULT_TRANSPORT) -> Any:
    """A fresh async HTTP client for the SDK on `transport` (aiohttp falls back to httpx)."""
    import openai

    if transport == "aiohttp":
        aio = getattr(openai, "DefaultAioHttpClient", None)
        if aio is not None:
            try:
                return aio()
            except RuntimeError:  # openai installed without its aiohttp extra
                pass
    return openai.DefaultAsyncHttpxClient()


class AsyncClientProxy:
    """An `AsyncOpenAI` look-alike whose calls go to the running loop's client."""

    __slots__ = ("_children", "_clients", "_path")

    def __init__(self, clients: PerLoop[Any], path: tuple[str, ...] = ()) -> None:
        self._clients = clients
        self._path = path
        self._children: dict[str, AsyncClientProxy] = {}

    def __getattr__(self, name: str) -> AsyncClientProxy:
        if name.startswith("__"):
            raise AttributeError(name)
        child = self._children.get(name)
        if child is None:
            child = self._children[name] = AsyncClientProxy(self._clients, (*self._path, name))
        return child

    def resolve(self) -> Any:
        """The real object this proxy names, on the running loop's client."""
        target = self._clients.get()
        for name in self._path:
            target = getattr(target, name)
        return target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)


_JSON_SCALARS = (str, int, float, bool, type(None))
_OPTIONS = ("timeout", "extra_headers", "extra_query", "extra_body")


def is_json(value: Any) -> bool:
    """True for data the SDK's transform would return unchanged (JSON types only)."""
    if isinstance(value, _JSON_SCALARS):
        return True
    if type(value) is dict:
        return all(type(k) is str and is_json(v) for k, v in value.items())
    if type(value) is list:
        return all(is_json(v) for v in value)
    return False


class _Raw:
    """What `with_raw_response.create` returns on the lean path: `.parse()` is the JSON dict."""

    __slots__ = ("_value", "headers")

    def __init__(self, value: Any) -> None:
        self._value = value
        self.headers: dict[str, str] = {}

    def parse(self) -> Any:
        return self._value


class LeanCompletions:
    """`chat.completions` of `root()` (an `openai.OpenAI` / `AsyncOpenAI`) with a lean
    `create` for plain chat completions (see the module docstring)."""

    def __init__(self, root: Callable[[], Any], *, asynchronous: bool) -> None:
        self._root = root
        self._async = asynchronous
        self.with_raw_response = _RawCompletions(self)

    def _lean_request(self, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
        if params.get("stream"):
            return None
        body = {k: v for k, v in params.items() if k not in _OPTIONS and v is not None}
        body.update(params.get("extra_body") or {})
        if not is_json(body):
            return None
        options: dict[str, Any] = {}
        if params.get("timeout") is not None:
            options["timeout"] = params["timeout"]
        if params.get("extra_headers"):
            options["headers"] = params["extra_headers"]
        if params.get("extra_query"):
            options["params"] = params["extra_query"]
        return body, options

    def create(self, **params: Any) -> Any:
        """A chat completion: the JSON dict (lean), else whatever the SDK's `create` returns."""
        root = self._root()
        lean = self._lean_request(params)
        if lean is None:
            return root.chat.completions.create(**params)
        body, options = lean
        return root.post("/chat/completions", body=body, options=options, cast_to=object)

    def raw_create(self, **params: Any) -> Any:
        root = self._root()
        lean = self._lean_request(params)
        if lean is None:
            return root.chat.completions.with_raw_response.create(**params)
        body, options = lean
        sent = root.post("/chat/completions", body=body, options=options, cast_to=object)
        if self._async:
            return _araw(sent)
        return _Raw(sent)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._root().chat.completions, name)


async def _araw(sent: Any) -> _Raw:
    return _Raw(await sent)


class _RawCompletions:
    def __init__(self, completions: LeanCompletions) -> None:
        self._completions = completions

    def create(self, **params: Any) -> Any:
        return self._completions.raw_create(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._completions._root().chat.completions.with_raw_response, name)


class AioChatClient:
    """A direct OpenAI-compatible client on one aiohttp session (the DSPy direct path).

    `post(path, body=, options=, cast_to=object)` has the shape of the SDK's `post()` as the
    gateway calls it and returns the JSON reply; failures are raised as the httpx exceptions
    `ragloom.core.retry.map_openai_error` already maps (status errors keep their headers, so
    Retry-After is honoured), so retries, typed errors and logs are those of every other call.
    It skips the SDK's request building (headers, URL parsing, options), which costs more CPU
    per call than the HTTP exchange itself (benchmarks/llm_call_cpu.py).
    """

    def __init__(self, base_url: str, api_key: str, timeout: float) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}",
                         "Content-Type": "application/json", "Accept": "application/json"}
        self._timeout = timeout
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
            json_serialize=_dumps)

    async def post(self, path: str, *, body: Any, options: dict[str, Any] | None = None,
                   cast_to: Any = object) -> Any:
        import httpx

        url = self._base + path
        timeout = float((options or {}).get("timeout") or self._timeout)
        aiohttp = self._aiohttp
        try:
            async with self._session.post(
                url, json=body, headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                raw = await response.read()
                status, headers = response.status, dict(response.headers)
        except aiohttp.ClientError as exc:  # dropped or refused connections, broken payloads
            if isinstance(exc, asyncio.TimeoutError):
                raise
            raise httpx.ConnectError(str(exc) or type(exc).__name__,
                                     request=httpx.Request("POST", url)) from exc
        if status >= 400:
            reply = httpx.Response(status, headers=headers, content=raw,
                                   request=httpx.Request("POST", url))
            raise httpx.HTTPStatusError(_error_message(raw, status), request=reply.request,
                                        response=reply)
        return json.loads(raw)

    async def close(self) -> None:
        await self._session.close()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _error_message(raw: bytes, status: int) -> str:
    """The provider's error message (OpenAI's `{"error": {"message": ...}}`), else the body."""
    try:
        data = json.loads(raw)
    except ValueError:
        return raw[:300].decode("utf-8", "replace") or f"HTTP {status}"
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(data)[:300]


def aiohttp_available() -> bool:
    """True when aiohttp can be imported (the direct client needs it)."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return False
    return True
