"""Per-event-loop resources: one object per running loop, closed when that loop shuts down.

An async client's connections (HTTP pools, database pools) belong to the event loop that
opened them, so a process that runs several loops (several `asyncio.run`, a server loop beside
a worker thread's loop) needs one per loop. `PerLoop` keeps exactly that: the running loop's
object is made on that loop's first call (under a lock: several threads may race), looked up by
the loop afterwards (no shared field is rewritten per call), and closed on that loop when the
loop shuts down: `asyncio.run` and `asyncio.Runner` call `shutdown_asyncgens`, which finalises a
small async generator started on the loop for that purpose. Objects of loops closed some other
way are dropped when the next loop appears (their sockets close when collected).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """One `T` per running event loop, made by `make()`, closed (`await close()`) with its loop."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._clients: dict[asyncio.AbstractEventLoop, tuple[T, Any]] = {}
        self.opened = 0  # objects made so far (tests and benchmarks read it)

    def get(self) -> T:
        """The running loop's object (made on first use)."""
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            entry = self._open(loop)
        return entry[0]

    def __len__(self) -> int:
        return len(self._clients)

    def _open(self, loop: asyncio.AbstractEventLoop) -> tuple[T, Any]:
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
        self, loop: asyncio.AbstractEventLoop, client: T
    ) -> AsyncIterator[None]:
        try:
            yield
        finally:
            with self._lock:
                if self._clients.get(loop, (None,))[0] is client:
                    del self._clients[loop]
            await client.close()  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        """Close the running loop's object now (others close with their loops)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._clients.pop(loop, None)
        if entry is not None:
            await entry[1].aclose()  # its `finally` closes the client
