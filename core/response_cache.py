"""The chat response cache and its salt (shared by the gateway and the DSPy adapter).

`ResponseCache` keys chat responses by (model, messages, params) in memory (LRU) or in SQLite;
`cache_salt(salt)` gives calls inside a block cache entries of their own (DSPy's `rollout_id`
asks for a fresh answer that way). Imports nothing heavy.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

# Distinguishes otherwise identical requests in the cache (DSPy's rollout_id sets it).
_CACHE_SALT: ContextVar[str | None] = ContextVar("ragloom_cache_salt", default=None)


def current_salt() -> str | None:
    """The salt set by the innermost `cache_salt` block (None outside any)."""
    return _CACHE_SALT.get()


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
