"""The embedded chunk store: one SQLite file (WAL) with FTS5 BM25 and float32 vectors.

Layout: `meta` (embedder name and dimensions, a write generation), `documents` (source and content
hash per tenant), `chunks` (text, its context line, place in the source, metadata, vector blob)
and `chunks_fts` (an FTS5 index of text and context, kept in step by triggers; BM25F weights the
context field). Vectors embed the contextual text (`base.embed_text`). Vector search is exact
cosine over a numpy matrix read from the file; the matrix is reloaded when the write generation
moves. Every write is one transaction that bumps the generation, so readers (other threads or
processes) see whole batches or nothing. Optionally an hnswlib ANN index replaces exact search
on large stores.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from ragloom.core.documents import Chunk
from ragloom.core.embedders import Embedder, normalize
from ragloom.core.errors import ConfigError, StoreError, StoreUnavailableError
from ragloom.tools.stores.base import (
    Filters,
    SearchMode,
    SearchOptions,
    chunk_context,
    embed_text,
    fuse,
)

log = structlog.get_logger(__name__)

SCHEMA_VERSION = "2"  # 2: context column + two-field FTS
DEFAULT_TENANT = ""
ANN_MIN_ROWS = 10_000
_BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for another process's write lock
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    tenant TEXT NOT NULL, source TEXT NOT NULL, content_hash TEXT NOT NULL DEFAULT '',
    updated TEXT NOT NULL DEFAULT '', PRIMARY KEY (tenant, source)
);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY, tenant TEXT NOT NULL, id TEXT NOT NULL, source TEXT NOT NULL,
    text TEXT NOT NULL, title TEXT NOT NULL DEFAULT '', heading_path TEXT NOT NULL DEFAULT '[]',
    start INTEGER NOT NULL DEFAULT 0, "end" INTEGER NOT NULL DEFAULT 0,
    position INTEGER NOT NULL DEFAULT 0, metadata TEXT NOT NULL DEFAULT '{}',
    vector BLOB NOT NULL, context TEXT NOT NULL DEFAULT '', UNIQUE (tenant, id)
);
CREATE INDEX IF NOT EXISTS chunks_by_source ON chunks (tenant, source, position);
"""

_FTS = """
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, context, content='chunks', content_rowid='rowid', tokenize='unicode61'
);
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text, context) VALUES (new.rowid, new.text, new.context);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, context)
    VALUES ('delete', old.rowid, old.text, old.context);
END;
CREATE TRIGGER IF NOT EXISTS chunks_au AFTER UPDATE OF text, context ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, context)
    VALUES ('delete', old.rowid, old.text, old.context);
    INSERT INTO chunks_fts(rowid, text, context) VALUES (new.rowid, new.text, new.context);
END;
"""

_COLUMNS = 'rowid, id, source, text, title, heading_path, start, "end", position, metadata'


@dataclass
class _VectorIndex:
    """One tenant's vectors at one write generation."""

    generation: int
    rowids: np.ndarray
    matrix: np.ndarray
    ann: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class EmbeddedStore:
    """A `ChunkStore` in one SQLite file; safe for concurrent readers while one thread writes."""

    def __init__(
        self, path: str | Path, embedder: Embedder, *, ann: bool = False,
        ann_min_rows: int = ANN_MIN_ROWS, ann_ef: int = 128, batch_size: int = 256,
        options: SearchOptions | None = None,
    ) -> None:
        self.path = Path(path)
        self.options = options or SearchOptions()
        self.embedder = embedder
        self.ann = ann
        self.ann_min_rows = ann_min_rows
        self.ann_ef = ann_ef
        self.batch_size = batch_size
        self.embed_calls = 0
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._indexes: dict[str, _VectorIndex] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._init_schema()

    # --- connections and schema ---------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            except sqlite3.Error as exc:  # e.g. switching a new file to WAL while another
                raise self._error(exc, "cannot open store") from exc  # process creates it
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._error(exc, "store") from exc

    def _error(self, exc: sqlite3.Error, what: str) -> StoreError:
        """A SQLite error as a store error: a lock held past the wait is a retryable busy one."""
        if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF in _BUSY_CODES:
            return StoreUnavailableError(
                f"store {self.path} is busy: another process held its write lock past the "
                f"{_BUSY_TIMEOUT_MS // 1000} s wait ({exc}); try again when it is done"
            )
        return StoreError(f"{what} {self.path}: {exc}")

    def _init_schema(self) -> None:
        with self._write_lock, self._transaction(write=True) as conn:
            for statement in _split_sql(_SCHEMA):
                conn.execute(statement)
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta and meta.get("schema_version") == "1":
                _migrate_v1(conn)
            for statement in _split_sql(_FTS):
                conn.execute(statement)
            if not meta:
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("schema_version", SCHEMA_VERSION), ("embedder", self.embedder.name),
                     ("dimensions", str(self.embedder.dimensions)), ("generation", "0")],
                )
                return
        if (meta.get("embedder"), meta.get("dimensions")) != (
            self.embedder.name, str(self.embedder.dimensions)
        ):
            raise ConfigError(
                f"store {self.path} was built with embedder {meta.get('embedder')!r} "
                f"({meta.get('dimensions')} dims), not {self.embedder.name!r} "
                f"({self.embedder.dimensions} dims)",
                setting="embedder.kind",
                fix="use the same embedder, or ingest into a new store path",
            )

    @staticmethod
    def _bump(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
        )

    # --- writes -------------------------------------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk], *, tenant: str | None = None) -> int:
        """Insert or replace chunks by id; unchanged texts keep their vectors (no re-embedding)."""
        if not chunks:
            return 0
        name = _tenant(tenant)
        chunks = list({c.id: c for c in chunks}.values())
        vectors = self._vectors_for(chunks, name)
        with self._write_lock, self._transaction(write=True) as conn:
            self._write_chunks(conn, name, chunks, vectors)
            for source, digest in {c.source: _hash_of(c) for c in chunks}.items():
                conn.execute(
                    "INSERT INTO documents (tenant, source, content_hash, updated) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (tenant, source) DO UPDATE SET "
                    "content_hash = CASE WHEN excluded.content_hash != '' "
                    "THEN excluded.content_hash ELSE content_hash END, updated = excluded.updated",
                    (name, source, digest, _now()),
                )
            self._bump(conn)
        return len(chunks)

    def replace_source(
        self, source: str, content_hash: str, chunks: Sequence[Chunk], *, tenant: str | None = None
    ) -> int:
        """Swap every chunk of `source` for `chunks` in one transaction; record the content hash."""
        name = _tenant(tenant)
        chunks = list({c.id: c for c in chunks}.values())
        if any(c.source != source for c in chunks):
            raise StoreError(f"replace_source({source!r}) got chunks of another source")
        vectors = self._vectors_for(chunks, name)
        with self._write_lock, self._transaction(write=True) as conn:
            conn.execute("DELETE FROM chunks WHERE tenant = ? AND source = ?", (name, source))
            self._write_chunks(conn, name, chunks, vectors)
            conn.execute(
                "INSERT INTO documents (tenant, source, content_hash, updated) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (tenant, source) DO UPDATE SET content_hash = excluded.content_hash, "
                "updated = excluded.updated",
                (name, source, content_hash, _now()),
            )
            self._bump(conn)
        return len(chunks)

    def delete(self, source: str, *, tenant: str | None = None) -> int:
        """Remove every chunk of `source` and its document record."""
        name = _tenant(tenant)
        with self._write_lock, self._transaction(write=True) as conn:
            removed = conn.execute(
                "DELETE FROM chunks WHERE tenant = ? AND source = ?", (name, source)
            ).rowcount
            conn.execute("DELETE FROM documents WHERE tenant = ? AND source = ?", (name, source))
            self._bump(conn)
        return int(removed)

    def _vectors_for(self, chunks: Sequence[Chunk], tenant: str) -> np.ndarray:
        """Vectors for `chunks`: stored ones where id, text and context are unchanged, else
        embedded (the contextual text, `embed_text`)."""
        known = self._known_vectors(tenant, [c.id for c in chunks])
        vectors = np.zeros((len(chunks), self.embedder.dimensions), dtype=np.float32)
        missing: list[int] = []
        for i, chunk in enumerate(chunks):
            stored = known.get(chunk.id)
            if stored is not None and stored[0] == (chunk.text, chunk_context(chunk)):
                vectors[i] = stored[1]
            else:
                missing.append(i)
        for begin in range(0, len(missing), self.batch_size):
            batch = missing[begin:begin + self.batch_size]
            self.embed_calls += 1
            embedded = self.embedder.embed_documents([embed_text(chunks[i]) for i in batch])
            vectors[batch] = normalize(embedded)
        return vectors

    def _known_vectors(
        self, tenant: str, ids: list[str]
    ) -> dict[str, tuple[tuple[str, str], np.ndarray]]:
        found: dict[str, tuple[tuple[str, str], np.ndarray]] = {}
        conn = self._conn()
        for begin in range(0, len(ids), 500):
            part = ids[begin:begin + 500]
            rows = conn.execute(
                f"SELECT id, text, context, vector FROM chunks "
                f"WHERE tenant = ? AND id IN ({','.join('?' * len(part))})",
                (tenant, *part),
            ).fetchall()
            for chunk_id, text, context, blob in rows:
                found[chunk_id] = ((text, context), np.frombuffer(blob, dtype=np.float32))
        return found

    def _write_chunks(
        self, conn: sqlite3.Connection, tenant: str, chunks: Sequence[Chunk], vectors: np.ndarray
    ) -> None:
        conn.executemany(
            'INSERT INTO chunks (tenant, id, source, text, title, heading_path, start, "end", '
            "position, metadata, vector, context) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (tenant, id) DO UPDATE SET source = excluded.source, "
            "text = excluded.text, title = excluded.title, heading_path = excluded.heading_path, "
            'start = excluded.start, "end" = excluded."end", position = excluded.position, '
            "metadata = excluded.metadata, vector = excluded.vector, context = excluded.context",
            [
                (tenant, c.id, c.source, c.text, c.title, json.dumps(list(c.heading_path)),
                 c.start, c.end, c.position, json.dumps(c.metadata, default=str),
                 np.ascontiguousarray(v, dtype=np.float32).tobytes(), chunk_context(c))
                for c, v in zip(chunks, vectors, strict=True)
            ],
        )

    # --- reads --------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        mode: SearchMode = "hybrid",
        alpha: float = 0.5,
        filters: Filters | None = None,
        tenant: str | None = None,
    ) -> list[Chunk]:
        """Best `k` chunks, best first; `score` is BM25 (positive), cosine, or the fused score."""
        if k <= 0 or not query.strip():
            return []
        name = _tenant(tenant)
        allowed = self._allowed_rowids(name, filters) if filters and not filters.empty else None
        if mode == "bm25":
            ranked = self._bm25(query, name, k, allowed)
        elif mode == "vector":
            ranked = self._vector(query, name, k, allowed)
        elif mode == "hybrid":
            depth = max(k, self.options.candidates)  # candidates per leg
            bm25 = self._bm25(query, name, depth, allowed)
            vector = self._vector(query, name, depth, allowed)
            sources = self._sources_of([i for i, _ in bm25] + [i for i, _ in vector], name) \
                if self.options.fusion == "document" else None
            ranked = fuse(self.options.fusion, bm25, vector, alpha, sources)[:k]
        else:
            raise ConfigError(f"unknown search mode {mode!r}", setting="retrieval.mode",
                              fix="use bm25, vector or hybrid")
        return self._hydrate(ranked, name)

    def _bm25(
        self, query: str, tenant: str, k: int, allowed: set[int] | None
    ) -> list[tuple[str, float]]:
        terms = self.options.query_terms(query)
        if not terms:
            return []
        match = " OR ".join(f'"{t}"' for t in terms)
        rank = f"bm25(chunks_fts, 1.0, {float(self.options.context_weight)!r})"
        sql = (
            f"SELECT c.rowid, c.id, -{rank} AS score FROM chunks_fts "
            "JOIN chunks c ON c.rowid = chunks_fts.rowid "
            f"WHERE chunks_fts MATCH ? AND c.tenant = ? ORDER BY {rank}, c.id"
        )
        results: list[tuple[str, float]] = []
        try:
            cursor = self._conn().execute(
                sql if allowed is not None else f"{sql} LIMIT {int(k)}", (match, tenant)
            )
            for rowid, chunk_id, score in cursor:
                if allowed is None or rowid in allowed:
                    results.append((chunk_id, float(score)))
                    if len(results) >= k:
                        break
            cursor.close()
        except sqlite3.Error as exc:
            raise StoreError(f"bm25 search failed: {exc}") from exc
        return results

    def _vector(
        self, query: str, tenant: str, k: int, allowed: set[int] | None
    ) -> list[tuple[str, float]]:
        index = self._index(tenant)
        if index.rowids.size == 0:
            return []
        vector = normalize(np.asarray(self.embedder.embed_query(query))[None, :])[0]
        if allowed is None and index.ann is not None:
            rowids, scores = self._ann_query(index, vector, k)
        else:
            rowids, scores = _exact_top_k(index, vector, k, allowed)
        return self._ids_for(tenant, rowids, scores)

    def _ann_query(
        self, index: _VectorIndex, vector: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, index.rowids.size)
        with index.lock:
            index.ann.set_ef(max(self.ann_ef, k * 2))
            labels, distances = index.ann.knn_query(vector[None, :], k=k)
        return index.rowids[labels[0]], 1.0 - distances[0]

    def _ids_for(
        self, tenant: str, rowids: np.ndarray, scores: np.ndarray
    ) -> list[tuple[str, float]]:
        if rowids.size == 0:
            return []
        rows = dict(self._conn().execute(
            f"SELECT rowid, id FROM chunks WHERE rowid IN ({','.join('?' * rowids.size)})",
            [int(r) for r in rowids],
        ).fetchall())
        pairs = [(rows[int(r)], float(s)) for r, s in zip(rowids, scores, strict=True)
                 if int(r) in rows]
        return sorted(pairs, key=lambda p: (-p[1], p[0]))

    def _sources_of(self, chunk_ids: list[str], tenant: str) -> dict[str, str]:
        ids = list(dict.fromkeys(chunk_ids))
        found: dict[str, str] = {}
        for begin in range(0, len(ids), 500):
            part = ids[begin:begin + 500]
            found.update(self._conn().execute(
                f"SELECT id, source FROM chunks WHERE tenant = ? AND id IN "
                f"({','.join('?' * len(part))})", (tenant, *part),
            ).fetchall())
        return found

    def _allowed_rowids(self, tenant: str, filters: Filters) -> set[int]:
        clauses, params = ["tenant = ?"], [tenant]
        if filters.sources:
            clauses.append(f"source IN ({','.join('?' * len(filters.sources))})")
            params += list(filters.sources)
        if filters.path_prefix:
            clauses.append("substr(source, 1, ?) = ?")
            params += [len(filters.path_prefix), filters.path_prefix]  # type: ignore[list-item]
        needs_metadata = bool(filters.tags or filters.modified_after or filters.modified_before)
        rows = self._conn().execute(
            f"SELECT rowid, source, metadata FROM chunks WHERE {' AND '.join(clauses)}", params
        ).fetchall()
        if not needs_metadata:
            return {rowid for rowid, _, _ in rows}
        return {
            rowid for rowid, source, metadata in rows
            if filters.matches(Chunk(id="", source=source, text="", metadata=json.loads(metadata)))
        }

    def _index(self, tenant: str) -> _VectorIndex:
        """The tenant's vector matrix, reloaded when the write generation has moved."""
        generation = self._generation()
        with self._lock:
            index = self._indexes.get(tenant)
        if index is not None and index.generation == generation:
            return index
        with self._transaction(write=False) as conn:
            generation = int(conn.execute(
                "SELECT value FROM meta WHERE key = 'generation'"
            ).fetchone()[0])
            rows = conn.execute(
                "SELECT rowid, vector FROM chunks WHERE tenant = ? ORDER BY rowid", (tenant,)
            ).fetchall()
        dims = self.embedder.dimensions
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(-1, dims)
        index = _VectorIndex(generation, np.array([r[0] for r in rows], dtype=np.int64), matrix)
        if self.ann and len(rows) >= self.ann_min_rows:
            index.ann = _build_ann(matrix)
        with self._lock:
            self._indexes[tenant] = index
        return index

    def _generation(self) -> int:
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def _hydrate(self, ranked: list[tuple[str, float]], tenant: str) -> list[Chunk]:
        by_id = {c.id: c for c in self.get([chunk_id for chunk_id, _ in ranked], tenant=tenant)}
        out = []
        for chunk_id, score in ranked:
            chunk = by_id.get(chunk_id)
            if chunk is not None:
                chunk.score = score
                out.append(chunk)
        return out

    def get(self, chunk_ids: Sequence[str], *, tenant: str | None = None) -> list[Chunk]:
        """Chunks by id, in the order asked (missing ids are left out)."""
        if not chunk_ids:
            return []
        name = _tenant(tenant)
        found: dict[str, Chunk] = {}
        ids = list(dict.fromkeys(chunk_ids))
        for begin in range(0, len(ids), 500):
            part = ids[begin:begin + 500]
            rows = self._conn().execute(
                f"SELECT {_COLUMNS} FROM chunks WHERE tenant = ? AND id IN "
                f"({','.join('?' * len(part))})",
                (name, *part),
            ).fetchall()
            found.update((row[1], _row_to_chunk(row)) for row in rows)
        return [found[i] for i in chunk_ids if i in found]

    def get_source(self, source: str, *, tenant: str | None = None) -> list[Chunk]:
        """All chunks of one source, in document order."""
        rows = self._conn().execute(
            f"SELECT {_COLUMNS} FROM chunks WHERE tenant = ? AND source = ? ORDER BY position, id",
            (_tenant(tenant), source),
        ).fetchall()
        return [_row_to_chunk(row) for row in rows]

    def count(self, *, tenant: str | None = None) -> int:
        """Number of chunks in the tenant."""
        row = self._conn().execute(
            "SELECT count(*) FROM chunks WHERE tenant = ?", (_tenant(tenant),)
        ).fetchone()
        return int(row[0])

    def sources(self, *, tenant: str | None = None) -> dict[str, str]:
        """Every source in the tenant with its content hash."""
        rows = self._conn().execute(
            "SELECT source, content_hash FROM documents WHERE tenant = ? ORDER BY source",
            (_tenant(tenant),),
        ).fetchall()
        return dict(rows)

    def tenants(self) -> list[str | None]:
        """Tenants holding chunks (None is the default tenant)."""
        rows = self._conn().execute("SELECT DISTINCT tenant FROM chunks ORDER BY tenant").fetchall()
        return [r[0] or None for r in rows]

    def generation(self) -> int:
        """Write generation: moves by one per committed write (batch)."""
        return self._generation()

    def close(self) -> None:
        """Close every connection opened by any thread."""
        with self._lock:
            for conn in self._connections:
                with suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
            self._indexes.clear()
        self._local = threading.local()

    def __enter__(self) -> EmbeddedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _migrate_v1(conn: sqlite3.Connection) -> None:
    """Schema 1 -> 2: add the context column (filled from title and heading path), rebuild the
    FTS index over text + context, and forget every source's content hash so the next ingest
    re-embeds each file with its context (vectors of schema 1 embed the bare text)."""
    for trigger in ("chunks_ai", "chunks_ad", "chunks_au"):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    conn.execute("DROP TABLE IF EXISTS chunks_fts")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(chunks)")}
    if "context" not in columns:
        conn.execute("ALTER TABLE chunks ADD COLUMN context TEXT NOT NULL DEFAULT ''")
    rows = conn.execute("SELECT rowid, source, title, heading_path FROM chunks").fetchall()
    conn.executemany("UPDATE chunks SET context = ? WHERE rowid = ?", [
        (chunk_context(Chunk(id="", source=source, text="", title=title,
                             heading_path=tuple(json.loads(path)))), rowid)
        for rowid, source, title, path in rows
    ])
    for statement in _split_sql(_FTS):
        conn.execute(statement)
    conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")
    conn.execute("UPDATE documents SET content_hash = ''")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))
    log.warning("store.migrated", from_version="1", to_version=SCHEMA_VERSION,
                fix="run `ragloom ingest` again: every file is re-embedded with its context")


def _tenant(tenant: str | None) -> str:
    return tenant or DEFAULT_TENANT


def _hash_of(chunk: Chunk) -> str:
    return str(chunk.metadata.get("content_hash") or "")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _split_sql(script: str) -> list[str]:
    """Statements of the schema script (trigger bodies keep their inner semicolons)."""
    statements, current = [], []
    for line in script.strip().splitlines():
        current.append(line)
        text = "\n".join(current).strip()
        if text.endswith(";") and sqlite3.complete_statement(text):
            statements.append(text)
            current = []
    return statements


def _row_to_chunk(row: Sequence[Any]) -> Chunk:
    _, chunk_id, source, text, title, heading_path, start, end, position, metadata = row
    return Chunk(
        id=chunk_id, source=source, text=text, title=title,
        heading_path=tuple(json.loads(heading_path)), start=start, end=end, position=position,
        metadata=json.loads(metadata),
    )


def _exact_top_k(
    index: _VectorIndex, vector: np.ndarray, k: int, allowed: set[int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-k (rows are unit vectors, so a dot product), optionally masked."""
    with single_thread_blas():
        scores = index.matrix @ vector
    rowids = index.rowids
    if allowed is not None:
        mask = np.isin(rowids, np.fromiter(allowed, dtype=np.int64, count=len(allowed)))
        scores, rowids = scores[mask], rowids[mask]
    if scores.size == 0:
        return rowids[:0], scores[:0]
    k = min(k, scores.size)
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return rowids[top], scores[top]


_BLAS_CONTROLLER: list[Any] = []


def single_thread_blas() -> AbstractContextManager[Any]:
    """Limit BLAS to one thread for a matrix-vector product (if threadpoolctl is installed).

    A gemv is memory-bound: extra BLAS threads barely help on an idle machine, and on a busy one
    (other processes, or torch holding the cores) they spin and cost 10-100x. Measured here: a
    10k x 384 product took 31 ms with 2 BLAS threads under load, 0.35 ms with one.
    """
    if not _BLAS_CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _BLAS_CONTROLLER.append(None)
        else:
            _BLAS_CONTROLLER.append(ThreadpoolController())
    controller = _BLAS_CONTROLLER[0]
    if controller is None:
        return nullcontext()
    return controller.limit(limits=1, user_api="blas")  # type: ignore[no-any-return]


def _build_ann(matrix: np.ndarray) -> Any:
    """An hnswlib cosine index over `matrix` (labels are row positions)."""
    try:
        import hnswlib
    except ImportError as exc:
        raise ConfigError("ANN search needs hnswlib", setting="store.ann",
                          fix="pip install 'ragloom[ann]' or set store.ann = false") from exc
    index = hnswlib.Index(space="cosine", dim=matrix.shape[1])
    index.init_index(max_elements=max(1, matrix.shape[0]), ef_construction=200, M=16)
    index.add_items(matrix, np.arange(matrix.shape[0]))
    log.info("store.ann_built", rows=int(matrix.shape[0]))
    return index
