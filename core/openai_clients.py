"""OpenAI SDK clients for the gateway: one sync client, one async client per event loop.

An async HTTP client's pooled connections belong to the event loop that opened them, so the
gateway keeps one per loop (`ragloom.core.loops.PerLoop`: made on the loop's first call, closed
when the loop shuts down).

`AsyncClientProxy` stands in for an `openai.AsyncOpenAI` where one object must serve every loop
(ChatOpenAI's public `root_async_client` / `async_client` fields): each call resolves the
running loop's client, then the attribute path, then calls it.

Transport (measured in benchmarks/llm_call_cpu.py): the SDK's aiohttp client
(`openai.DefaultAioHttpClient`) when the installed openai has it, else its httpx client.
Importing this module imports no openai: it loads when a client is first made.
"""

from __future__ import annotations

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
