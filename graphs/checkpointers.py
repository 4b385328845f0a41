"""Checkpointers that keep threads: SQLite (default), PostgreSQL (scale-out), in-memory (tests).

LangGraph's `SqliteSaver` and `PostgresSaver` are sync-only; the graphs here are called through
both `invoke` and `ainvoke`, so the savers below add async methods that run the sync ones in a
worker thread (each saver already serialises access with its own lock).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
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
from ragloom.core.settings import CheckpointerSettings


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

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)  # type: ignore[attr-defined]

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)  # type: ignore[attr-defined]


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


def postgres_saver(url: str) -> BaseCheckpointSaver[Any]:
    """A `PostgresSaver` (sync and async through a thread) on its own connection."""
    try:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            "the postgres checkpointer needs langgraph-checkpoint-postgres",
            setting="checkpointer.kind",
            fix="pip install 'ragloom[postgres]'",
        ) from exc

    class ThreadPostgresSaver(_AsyncFromSync, PostgresSaver):  # type: ignore[misc]
        pass

    try:
        conn = psycopg.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row)
    except psycopg.Error as exc:
        raise ConfigError(
            f"cannot connect to PostgreSQL: {exc}",
            setting="checkpointer.postgres_url",
            fix="set RAGLOOM_CHECKPOINTER__POSTGRES_URL to a reachable postgresql:// URL",
        ) from exc
    saver = ThreadPostgresSaver(conn)  # type: ignore[arg-type]
    saver.setup()
    return saver


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
