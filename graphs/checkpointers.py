"""Checkpointers that keep threads: SQLite (default), PostgreSQL (scale-out), in-memory (tests).

The graphs are called through both `invoke` and `ainvoke`, so each saver here serves both.

- SQLite: LangGraph's `SqliteSaver` is sync-only; `ThreadSqliteSaver` adds async methods that
  run the sync ones in a worker thread (the saver serialises access with its own lock).
- PostgreSQL: `PooledPostgresSaver` runs LangGraph's `PostgresSaver`s on a psycopg_pool
  `ConnectionPool` for the sync path, and for the async path (`ainvoke`, the server) the running
  event loop's `AsyncPostgresSaver`s on that loop's `AsyncConnectionPool` (a pool's connections
  belong to the loop that opened them: one per loop, closed when the loop shuts down). Several
  savers share each pool because each LangGraph saver runs one operation at a time. Writes no
  longer queue through one connection and a worker thread per call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import itertools
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from ragloom.core.errors import ConfigError
from ragloom.core.loops import PerLoop
from ragloom.core.settings import CheckpointerSettings

POOL_SIZE = 10  # connections per pool (one sync pool, one async pool per event loop)


class _AsyncFromSync:
    """Async checkpointer methods that delegate to the sync ones in a thread."""

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)  # type: ignore[attr-defined]

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        items = await asyncio.to_thread(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit))  # type: ignore[attr-defined]
        )
        for item in items:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)  # type: ignore[attr-defined]

    def aput_writes(  # type: ignore[override]
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> asyncio.Future[None]:
        """Start saving a finished task's writes now, on this saver's own writer thread.

        Not a coroutine on purpose: LangGraph gates what it submits (these writes included)
        with the run's `max_concurrency`, so while slow tasks hold every slot a finished task's
        writes would wait, and a crash then would lose them (a 24-chunk summary killed with 8
        map calls in flight kept none of its 12 finished chunks). The write starts on the call.
        """
        work = functools.partial(self.put_writes, config, writes, task_id, task_path)  # type: ignore[attr-defined]
        return asyncio.get_running_loop().run_in_executor(_writer(), work)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)  # type: ignore[attr-defined]


_WRITER: concurrent.futures.ThreadPoolExecutor | None = None
_WRITER_LOCK = threading.Lock()


def _writer() -> concurrent.futures.ThreadPoolExecutor:
    """One writer thread for the SQLite savers' task writes (the saver serialises writes on its
    lock anyway); not the loop's default pool, which other work may fill."""
    global _WRITER
    with _WRITER_LOCK:
        if _WRITER is None:
            _WRITER = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ragloom-writes")
        return _WRITER


class ThreadSqliteSaver(_AsyncFromSync, SqliteSaver):  # type: ignore[misc]
    """`SqliteSaver` on one WAL-mode file, usable from invoke and ainvoke."""

    @classmethod
    def from_path(cls, path: Path | str) -> ThreadSqliteSaver:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        saver = cls(conn)
        saver.setup()
        return saver


def _postgres_modules() -> tuple[Any, Any, Any, Any]:
    try:
        import psycopg
        import psycopg_pool
        from langgraph.checkpoint.postgres import PostgresSaver
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            "the postgres checkpointer needs langgraph-checkpoint-postgres and psycopg-pool",
            setting="checkpointer.kind",
            fix="pip install 'ragloom[postgres]'",
        ) from exc
    return psycopg, psycopg_pool, PostgresSaver, AsyncPostgresSaver


def _connection_kwargs() -> dict[str, Any]:
    from psycopg.rows import dict_row

    return {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}


def _idle_first(savers: Sequence[Any], turn: int) -> Any:
    """A saver whose lock is free (LangGraph's Postgres savers hold theirs for a whole
    operation), else the next in turn."""
    for saver in savers:
        if not saver.lock.locked():
            return saver
    return savers[turn % len(savers)]


class _LoopSavers:
    """`AsyncPostgresSaver`s sharing one `AsyncConnectionPool`, for one event loop."""

    def __init__(self, url: str, pool_size: int) -> None:
        _, psycopg_pool, _, async_saver = _postgres_modules()
        self.pool = psycopg_pool.AsyncConnectionPool(
            url, min_size=1, max_size=pool_size, open=False, kwargs=_connection_kwargs())
        self.savers = [async_saver(self.pool) for _ in range(pool_size)]
        self._turn = itertools.count()

    async def pick(self) -> Any:
        if self.pool.closed:
            await self.pool.open()  # safe when another task opened it meanwhile
        return _idle_first(self.savers, next(self._turn))

    async def close(self) -> None:
        await self.pool.close()


class PooledPostgresSaver(BaseCheckpointSaver[str]):
    """LangGraph's Postgres savers on connection pools, for `invoke` and `ainvoke` alike.

    Each LangGraph saver runs one operation at a time (it holds a lock for the whole
    operation), so this keeps `pool_size` of them over one pool and gives each operation a
    free one: sync operations go to `PostgresSaver`s on a `ConnectionPool`, async ones to the
    running loop's `AsyncPostgresSaver`s on that loop's `AsyncConnectionPool`.
    """

    def __init__(self, url: str, pool: Any, pool_size: int = POOL_SIZE) -> None:
        _, _, postgres_saver_cls, _ = _postgres_modules()
        self._savers = [postgres_saver_cls(pool) for _ in range(pool_size)]
        super().__init__(serde=self._savers[0].serde)
        self.conn = pool
        self._turn = itertools.count()
        self._loops: PerLoop[_LoopSavers] = PerLoop(lambda: _LoopSavers(url, pool_size))

    def _sync(self) -> Any:
        return _idle_first(self._savers, next(self._turn))

    async def _async(self) -> Any:
        return await self._loops.get().pick()

    def get_next_version(self, current: str | None, channel: None) -> str:
        return self._savers[0].get_next_version(current, channel)  # type: ignore[no-any-return]

    # -- sync (invoke) ---------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._sync().get_tuple(config)  # type: ignore[no-any-return]

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        yield from self._sync().list(config, filter=filter, before=before, limit=limit)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._sync().put(config, checkpoint, metadata, new_versions)  # type: ignore[no-any-return]

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._sync().put_writes(config, writes, task_id, task_path)

    def delete_thread(self, thread_id: str) -> None:
        self._sync().delete_thread(thread_id)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._sync().prune(thread_ids, strategy=strategy)

    def get_delta_channel_history(self, *, config: RunnableConfig,
                                  channels: Sequence[str]) -> Any:
        return self._sync().get_delta_channel_history(config=config, channels=channels)

    # -- async (ainvoke, the server) -------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await (await self._async()).aget_tuple(config)  # type: ignore[no-any-return]

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        saver = await self._async()
        async for item in saver.alist(config, filter=filter, before=before, limit=limit):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        saver = await self._async()
        return await saver.aput(config, checkpoint, metadata, new_versions)  # type: ignore[no-any-return]

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        # A coroutine, unlike `ThreadSqliteSaver.aput_writes`: a detached write task on the
        # loop's pool could outlive the run and hang `asyncio.run`'s shutdown (seen in the
        # suite), so PostgreSQL writes wait for LangGraph's gate as LangGraph's own saver does.
        await (await self._async()).aput_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await (await self._async()).adelete_thread(thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await (await self._async()).aprune(thread_ids, strategy=strategy)

    async def aget_delta_channel_history(self, *, config: RunnableConfig,
                                         channels: Sequence[str]) -> Any:
        saver = await self._async()
        return await saver.aget_delta_channel_history(config=config, channels=channels)

    # -- lifecycle -------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the running loop's async pool now (others close with their loops)."""
        await self._loops.aclose()

    def close(self) -> None:
        """Close the sync pool (async pools close with their event loops)."""
        self.conn.close()


def postgres_saver(url: str, *, pool_size: int = POOL_SIZE) -> BaseCheckpointSaver[Any]:
    """A PostgreSQL saver on connection pools: sync `PostgresSaver` for `invoke`, the event
    loop's `AsyncPostgresSaver` for `ainvoke` (see the module docstring). Creates the tables."""
    psycopg, psycopg_pool, postgres_saver_cls, _ = _postgres_modules()
    try:
        with psycopg.connect(url, **_connection_kwargs()) as conn:
            postgres_saver_cls(conn).setup()  # migrations, once, on a plain connection
    except psycopg.Error as exc:
        raise ConfigError(
            f"cannot connect to PostgreSQL: {exc}",
            setting="checkpointer.postgres_url",
            fix="set RAGLOOM_CHECKPOINTER__POSTGRES_URL to a reachable postgresql:// URL",
        ) from exc
    pool = psycopg_pool.ConnectionPool(url, min_size=1, max_size=pool_size, open=True,
                                       kwargs=_connection_kwargs())
    return PooledPostgresSaver(url, pool, pool_size)


def build_checkpointer(settings: CheckpointerSettings) -> BaseCheckpointSaver[Any]:
    """The checkpointer named by settings."""
    if settings.kind == "memory":
        return InMemorySaver()
    if settings.kind == "postgres":
        if settings.postgres_url is None:
            raise ConfigError(
                "checkpointer.kind is postgres but no URL is set",
                setting="checkpointer.postgres_url",
                fix="set RAGLOOM_CHECKPOINTER__POSTGRES_URL",
            )
        return postgres_saver(settings.postgres_url.get_secret_value())
    return ThreadSqliteSaver.from_path(settings.path)
