"""What the server runs: one store and checkpointer, one assistant graph per tenant, and turns.

A turn runs in its own asyncio task that feeds a queue; HTTP handlers read the queue. So a
client that disconnects (or a handler that is cancelled) never cancels the run: the turn
finishes, its answer is checkpointed, and the thread stays consistent (question then answer).
Only server shutdown cancels runs still going after a grace period. One run per thread at a time:
a second request on a busy thread gets `ThreadBusyError` (409), within a process and, with the
PostgreSQL checkpointer, across workers (a session advisory lock per thread).

`graph_input` and `turn_result` are the one adapter between HTTP and the graph's input/output
keys, so a change of the graph's schema (e.g. messages input) is a change here only.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import structlog

from ragloom.core.settings import Settings
from ragloom.server_auth import Principal
from ragloom.server_errors import NotReadyError, ThreadBusyError

log = structlog.get_logger(__name__)

GraphBuilder = Callable[[str | None], Any]
SHUTDOWN_GRACE_SECONDS = 10.0


# ---------------------------------------------------------------- the adapter


def graph_input(question: str) -> dict[str, Any]:
    """The assistant graph's input for one question."""
    return {"question": question}


@dataclass
class TurnResult:
    """One answered turn, as the server reports it."""

    thread_id: str
    answer: str
    citations: list[dict[str, Any]]
    engine: str
    caveat: str | None = None
    route: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer, "citations": self.citations, "engine": self.engine,
            "route": self.route, "caveat": self.caveat, "usage": self.usage,
            "thread_id": self.thread_id,
        }  # fmt: skip


def turn_result(output: dict[str, Any], thread_id: str) -> TurnResult:
    """A `TurnResult` from the graph's output keys."""
    from ragloom.server_errors import ServerError

    if "answer" not in output:
        raise ServerError("the run stopped without an answer")
    return TurnResult(
        thread_id=thread_id,
        answer=str(output.get("answer") or ""),
        citations=[dict(c) for c in output.get("citations") or []],
        engine=str(output.get("engine") or ""),
        caveat=output.get("caveat"),
        route=output.get("route"),
        usage=dict(output.get("usage") or {}),
    )


def message_dict(message: Any) -> dict[str, Any]:
    """A thread message as `{"role", "content"}` (plain dicts or LangChain messages)."""
    if isinstance(message, dict):
        return {"role": message.get("role"), "content": message.get("content")}
    roles = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
    kind = getattr(message, "type", "")
    return {"role": roles.get(kind, kind), "content": getattr(message, "content", "")}


# ---------------------------------------------------------------- the runtime


class ServerRuntime:
    """The objects a server process shares: store, checkpointer, per-tenant graphs, runs."""

    def __init__(
        self,
        settings: Settings,
        *,
        build_assistant: GraphBuilder | None = None,
        build_summarizer: Callable[[], Any] | None = None,
    ) -> None:
        self.settings = settings
        self._build_assistant = build_assistant
        self._build_summarizer = build_summarizer
        self._stack = ExitStack()
        self.store: Any = None
        self.checkpointer: Any = None
        self._graphs: dict[str | None, Any] = {}
        self._graph_lock = asyncio.Lock()
        self._summarizer: Any = None
        self._wiring: Any = None
        self._busy: set[str] = set()
        self._runs: set[asyncio.Task[Any]] = set()
        self._releases: set[asyncio.Future[None]] = set()
        self.leases: ThreadLeases | None = None

    # -- lifecycle

    def open(self) -> None:
        """Open the store and the checkpointer through the wiring, and the thread leases
        (blocking: call in a thread)."""
        url = self.settings.checkpointer.postgres_url
        if self.settings.checkpointer.kind == "postgres" and url is not None:
            self.leases = ThreadLeases(url.get_secret_value())
            self._stack.callback(self.leases.close)
        if self._build_assistant is not None:
            return
        from ragloom.graphs.wiring import Wiring

        self._wiring = Wiring(self.settings)
        self._stack.callback(self._wiring.close)
        self.store = self._wiring.store
        self.checkpointer = self._wiring.checkpointer

    async def aclose(self) -> None:
        """Let runs finish (bounded), cancel the rest, close what `open` opened."""
        if self._runs:
            _, pending = await asyncio.wait(self._runs, timeout=SHUTDOWN_GRACE_SECONDS)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)
        if self._releases:
            await asyncio.wait(self._releases, timeout=5)
        await asyncio.to_thread(self._stack.close)

    # -- graphs

    def tenant_of(self, principal: Principal) -> str | None:
        return principal.tenant if principal.tenant is not None else self.settings.store.tenant

    async def assistant(self, principal: Principal) -> Any:
        """The tenant's assistant graph (built once, in a worker thread)."""
        tenant = self.tenant_of(principal)
        graph = self._graphs.get(tenant)
        if graph is not None:
            return graph
        async with self._graph_lock:
            if tenant not in self._graphs:
                self._graphs[tenant] = await asyncio.to_thread(self._new_assistant, tenant)
            return self._graphs[tenant]

    def _new_assistant(self, tenant: str | None) -> Any:
        if self._build_assistant is not None:
            return self._build_assistant(tenant)
        return self._wiring.assistant(tenant=tenant)

    def summarizer(self) -> Any:
        """The summarizer graph (not persisted: a summary is one request)."""
        if self._summarizer is None:
            if self._build_summarizer is not None:
                self._summarizer = self._build_summarizer()
            else:
                from ragloom.graphs.wiring import Wiring

                wiring = self._wiring or Wiring(self.settings)
                self._summarizer = wiring.summarizer()
        return self._summarizer

    # -- readiness

    async def check_ready(self, principal: Principal) -> dict[str, str]:
        """Reach the store and the checkpointer; NotReadyError names what failed."""
        graph = await self.assistant(principal)
        checks: dict[str, str] = {}
        store = self.store
        tenant = self.tenant_of(principal)
        probes: dict[str, Callable[[], Any]] = {}
        if store is not None:
            probes["store"] = lambda: store.count(tenant=tenant)
        probes["checkpointer"] = lambda: graph.get_state(
            {"configurable": {"thread_id": "readyz-probe"}}
        )
        for name, probe in probes.items():
            try:
                await asyncio.wait_for(asyncio.to_thread(probe), timeout=5)
                checks[name] = "ok"
            except Exception as exc:  # any failure means not ready
                log.warning("server.not_ready", check=name, error=type(exc).__name__)
                raise NotReadyError(f"{name} unreachable") from None
        return checks

    # -- turns

    async def start_turn(
        self, graph: Any, principal: Principal, question: str, thread_id: str
    ) -> TurnRun:
        """Start a turn in the background; ThreadBusyError if the thread has one running here
        or, with the PostgreSQL checkpointer, on any worker."""
        key = principal.thread_key(thread_id)
        busy = ThreadBusyError(f"thread {thread_id} is answering another question; retry soon")
        if key in self._busy:
            raise busy
        self._busy.add(key)
        try:
            leased = self.leases is None or await asyncio.to_thread(self.leases.acquire, key)
        except Exception as exc:
            self._busy.discard(key)
            log.warning("server.lease_failed", error=type(exc).__name__)
            raise NotReadyError("the thread lock store (PostgreSQL) is unreachable") from None
        except BaseException:
            self._busy.discard(key)
            raise
        if not leased:
            self._busy.discard(key)
            raise busy
        run = TurnRun(graph, question, thread_id, key,
                      durability=self.settings.checkpointer.durability)
        task = asyncio.create_task(run.execute(), name=f"turn-{key}")
        self._runs.add(task)
        task.add_done_callback(lambda finished: self._finish(finished, key))
        return run

    def _finish(self, task: asyncio.Task[Any], key: str) -> None:
        self._runs.discard(task)
        self._busy.discard(key)
        if self.leases is not None:
            release = asyncio.get_running_loop().run_in_executor(None, self.leases.release, key)
            self._releases.add(release)
            release.add_done_callback(self._releases.discard)


class ThreadLeases:
    """Per-thread run leases across processes: PostgreSQL session advisory locks on one
    connection of this worker (a worker that dies releases its leases with its session)."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        self._lock = threading.Lock()

    def _query(self, sql: str, key: str) -> bool:
        with self._lock, self._conn.cursor() as cur:
            cur.execute(sql, (key,))
            row = cur.fetchone()
        return bool(row and row[0])

    def acquire(self, key: str) -> bool:
        """True when this worker now holds `key` (False: another session holds it)."""
        return self._query("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", key)

    def release(self, key: str) -> None:
        self._query("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", key)

    def close(self) -> None:
        self._conn.close()


_END = object()


class TurnRun:
    """One turn of the assistant on one thread, as a stream of events.

    Events: `("node", {"node": name})`, `("token", {"text": ...})`, `("final", TurnResult)`,
    `("error", exception)`; the queue ends after `final` or `error`.
    """

    def __init__(self, graph: Any, question: str, thread_id: str, key: str,
                 *, durability: str = "async") -> None:
        self.graph = graph
        self.durability = durability
        self.question = question
        self.thread_id = thread_id
        self.config: dict[str, Any] = {"configurable": {"thread_id": key}}
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.result: TurnResult | None = None
        self.error: BaseException | None = None
        self.done = asyncio.Event()
        self.started = time.perf_counter()

    async def execute(self) -> None:
        """Run the graph to the end, whoever is listening."""
        last: dict[str, Any] = {}
        try:
            async for mode, chunk in self.graph.astream(
                graph_input(self.question), self.config,
                stream_mode=["updates", "messages", "values"], durability=self.durability,
            ):  # fmt: skip
                if mode == "updates":
                    for node in chunk or {}:
                        self.queue.put_nowait(("node", {"node": node}))
                elif mode == "messages":
                    message, _meta = chunk
                    if message.type == "AIMessageChunk" and message.content:  # answer tokens
                        self.queue.put_nowait(("token", {"text": str(message.content)}))
                elif mode == "values" and isinstance(chunk, dict):
                    last = chunk
            self.result = turn_result(last, self.thread_id)
            self.queue.put_nowait(("final", self.result))
        except asyncio.CancelledError:
            self.error = NotReadyError("the server is shutting down")
            self.queue.put_nowait(("error", self.error))
            raise
        except Exception as exc:  # reported to the client as a typed error
            self.error = exc
            log.error("server.turn_failed", error=type(exc).__name__, detail=str(exc),
                      thread_id=self.thread_id)
            self.queue.put_nowait(("error", exc))
        finally:
            self.queue.put_nowait(_END)
            self.done.set()

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        """The run's events as they happen (stops after `final` or `error`)."""
        while True:
            item = await self.queue.get()
            if item is _END:
                return
            yield item

    async def wait(self) -> TurnResult:
        """The turn's result (raises its error). Cancelling the wait leaves the run going."""
        await self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def new_thread_id() -> str:
    """A fresh thread id for a request that names none."""
    return f"http-{uuid.uuid4().hex[:12]}"

