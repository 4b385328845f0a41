"""OpenAI SDK clients for the gateway: one sync client, one async client per event loop.

An async HTTP client's pooled connections belong to the event loop that opened them, so a
process that runs several loops (several `asyncio.run`, a server loop beside a worker thread's
loop) needs one client per loop. `LoopClients` keeps exactly that: the client of the running
loop is made on that loop's first call (under a lock: several threads may race), looked up by
the loop afterwards (no shared field is rewritten per call), and closed on that loop when the
loop shuts down (`asyncio.run` and `asyncio.Runner` call `shutdown_asyncgens`, which finalises a
small async generator started on the loop for that purpose). Clients of loops closed some other
way are dropped when the next loop appears.

`AsyncClientProxy` stands in for an `openai.AsyncOpenAI` where one object must serve every loop
(ChatOpenAI's public `root_async_client` / `async_client` fields): each call resolves the
running loop's client, then the attribute path, then calls it.

Transport (measured in benchmarks/llm_call_cpu.py): the SDK's aiohttp client
(`openai.DefaultAioHttpClient`) when the installed openai has it, else its httpx client.
Importing this module imports no openai: it loads when a client is first made.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

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


class LoopClients:
    """One async client per running event loop, made by `make()`, closed with its loop."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._clients: dict[asyncio.AbstractEventLoop, tuple[Any, Any]] = {}
        self.opened = 0  # clients made so far (tests and benchmarks read it)

    def get(self) -> Any:
        """The running loop's client (made on first use)."""
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            entry = self._open(loop)
        return entry[0]

    def __len__(self) -> int:
        return len(self._clients)

    def _open(self, loop: asyncio.AbstractEventLoop) -> tuple[Any, Any]:
        with self._lock:
            entry = self._clients.get(loop)
            if entry is not None:
                return entry
            for old in [other for other in self._clients if other.is_closed()]:
                del self._clients[old]  # closed without shutdown_asyncgens: let GC close it
            client = self._make()
            watcher = self._close_at_shutdown(loop, client)
            entry = self._clients[loop] = (client, watcher)
            self.opened += 1
        # Start the watcher on this loop (it stops at its first `yield` without awaiting), so
        # the loop's shutdown_asyncgens() finalises it, closing the client on the loop.
        start: Any = watcher.__anext__()
        with contextlib.suppress(StopIteration):
            start.send(None)
        return entry

    async def _close_at_shutdown(
        self, loop: asyncio.AbstractEventLoop, client: Any
    ) -> AsyncIterator[None]:
        try:
            yield
        finally:
            with self._lock:
                if self._clients.get(loop, (None,))[0] is client:
                    del self._clients[loop]
            await client.close()

    async def aclose(self) -> None:
        """Close the running loop's client now (others close with their loops)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._clients.pop(loop, None)
        if entry is not None:
            await entry[1].aclose()  # its `finally` closes the client


class AsyncClientProxy:
    """An `AsyncOpenAI` look-alike whose calls go to the running loop's client."""

    __slots__ = ("_children", "_clients", "_path")

    def __init__(self, clients: LoopClients, path: tuple[str, ...] = ()) -> None:
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
