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
