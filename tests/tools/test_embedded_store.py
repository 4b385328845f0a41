"""EmbeddedStore specifics: WAL, whole-batch visibility, embedder pinning, vector reuse, ANN."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ragloom.core.documents import Chunk, make_chunk_id
from ragloom.core.errors import ConfigError
from ragloom.core.testing.embedders import HashingEmbedder
from ragloom.tools.stores.embedded import EmbeddedStore
from tests.tools.helpers import CountingEmbedder

BATCH = 20


class SlowEmbedder(HashingEmbedder):
    """Takes a little time per batch so a polling reader interleaves with the writer."""

    def embed_documents(self, texts):  # type: ignore[no-untyped-def]
        time.sleep(0.01)
        return super().embed_documents(texts)


def _batch(number: int, size: int = BATCH) -> list[Chunk]:
    chunks = []
    for i in range(size):
        text = f"common marker batch{number} item{i} words {number * size + i}"
        source = f"b{number}.txt"
        chunks.append(Chunk(id=make_chunk_id(source, i, text), source=source, text=text,
                            position=i, metadata={"content_hash": f"h{number}"}))
    return chunks


def test_file_is_in_wal_mode(tmp_path: Path) -> None:
    EmbeddedStore(tmp_path / "s.db", HashingEmbedder(64)).close()
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"meta", "documents", "chunks", "chunks_fts"} <= tables
    conn.close()


def test_a_different_embedder_is_refused(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "s.db", HashingEmbedder(64)) as store:
        store.upsert(_batch(0))
    with pytest.raises(ConfigError, match="hashing-64"):
        EmbeddedStore(tmp_path / "s.db", HashingEmbedder(32))
    with EmbeddedStore(tmp_path / "s.db", HashingEmbedder(64)) as again:  # same one is fine
        assert again.count() == BATCH


def test_data_persists_across_reopen(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "s.db", HashingEmbedder(64)) as store:
        store.replace_source("b0.txt", "h0", _batch(0))
    with EmbeddedStore(tmp_path / "s.db", HashingEmbedder(64)) as store:
        assert store.count() == BATCH
        assert store.sources() == {"b0.txt": "h0"}
        assert store.search("batch0 item3", k=1, mode="vector")[0].text.split()[3] == "item3"


def test_unchanged_chunks_are_not_embedded_again(tmp_path: Path) -> None:
    embedder = CountingEmbedder(64)
    with EmbeddedStore(tmp_path / "s.db", embedder) as store:
        store.upsert(_batch(0))
        assert len(embedder.embedded) == BATCH
        store.upsert(_batch(0))
        store.replace_source("b0.txt", "h0", _batch(0))
        assert len(embedder.embedded) == BATCH
        changed = _batch(0)
        changed[0] = Chunk(id=changed[0].id, source="b0.txt", text="new text", position=0)
        store.upsert(changed)
        assert embedder.embedded[BATCH:] == ["new text"]


def test_bm25_scores_are_positive_and_better_is_higher(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "s.db", HashingEmbedder(64)) as store:
        store.upsert([
            Chunk(id="a", source="a", text="owl owl owl night"),
            Chunk(id="b", source="b", text="owl in a long sentence about many other things here"),
        ])
        results = store.search("owl", k=2, mode="bm25")
        assert [c.id for c in results] == ["a", "b"]
        assert results[0].score > results[1].score > 0  # type: ignore[operator]


@pytest.mark.parametrize("second_handle", [False, True])
def test_readers_never_see_half_a_batch(tmp_path: Path, second_handle: bool) -> None:
    """A reader polling while a writer adds batches sees 0, 20, 40, ... chunks, never between."""
    writer = EmbeddedStore(tmp_path / "s.db", SlowEmbedder(64))
    reader = EmbeddedStore(tmp_path / "s.db", HashingEmbedder(64)) if second_handle else writer
    batches, seen, errors = 25, [], []
    done = threading.Event()

    def write() -> None:
        try:
            for number in range(batches):
                writer.upsert(_batch(number))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    while not done.is_set() or not seen:
        counts = (
            reader.count(),
            len(reader.search("common marker", k=10_000, mode="bm25")),
            len(reader.search("common marker", k=10_000, mode="vector")),
            len(reader.search("common marker", k=10_000, mode="hybrid")),
        )
        seen.append(counts)
    thread.join()
    assert not errors
    assert all(value % BATCH == 0 for counts in seen for value in counts), seen
    assert len({counts[0] for counts in seen}) >= 3  # the reader really ran during the writes
    assert reader.count() == batches * BATCH
    assert len(reader.search("common", k=10_000, mode="vector")) == batches * BATCH
    if second_handle:
        reader.close()
    writer.close()


def test_ann_index_agrees_with_exact_search(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(300)]
    chunks = []
    for i in range(600):
        text = " ".join(rng.choice(words, size=12))
        chunks.append(Chunk(id=make_chunk_id("s", i, text), source=f"s{i % 10}", text=text,
                            position=i))
    exact = EmbeddedStore(tmp_path / "exact.db", HashingEmbedder(64))
    ann = EmbeddedStore(tmp_path / "ann.db", HashingEmbedder(64), ann=True, ann_min_rows=100)
    exact.upsert(chunks)
    ann.upsert(chunks)
    overlap = []
    for _q in range(20):
        query = " ".join(rng.choice(words, size=4))
        want = {c.id for c in exact.search(query, k=10, mode="vector")}
        got = {c.id for c in ann.search(query, k=10, mode="vector")}
        overlap.append(len(want & got) / 10)
    assert ann._index("").ann is not None
    assert np.mean(overlap) >= 0.9
    exact.close()
    ann.close()


_V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (tenant TEXT NOT NULL, source TEXT NOT NULL,
    content_hash TEXT NOT NULL DEFAULT '', updated TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, source));
CREATE TABLE chunks (rowid INTEGER PRIMARY KEY, tenant TEXT NOT NULL, id TEXT NOT NULL,
    source TEXT NOT NULL, text TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',
    heading_path TEXT NOT NULL DEFAULT '[]', start INTEGER NOT NULL DEFAULT 0,
    "end" INTEGER NOT NULL DEFAULT 0, position INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}', vector BLOB NOT NULL, UNIQUE (tenant, id));
CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks', content_rowid='rowid');
CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.rowid, new.text); END;
"""


def test_a_schema_1_store_migrates_and_asks_for_a_re_ingest(tmp_path: Path) -> None:
    """Schema 1 (bare text) opens as schema 2: context column and FTS field filled, and every
    source's hash forgotten so the next ingest re-embeds each file with its context."""
    path = tmp_path / "old.db"
    embedder = HashingEmbedder(32)
    db = sqlite3.connect(path)
    db.executescript(_V1_SCHEMA)
    db.executemany("INSERT INTO meta VALUES (?, ?)", [
        ("schema_version", "1"), ("embedder", embedder.name), ("dimensions", "32"),
        ("generation", "3")])
    db.execute("INSERT INTO documents VALUES ('', 'guide.md', 'h1', '')")
    vector = embedder.embed_documents(["Lists hold items."])[0].tobytes()
    db.execute("INSERT INTO chunks (tenant, id, source, text, title, heading_path, vector) "
               "VALUES ('', 'c1', 'guide.md', 'Lists hold items.', 'Python Guide', "
               "'[\"Python Guide\", \"Sequences\"]', ?)", (vector,))
    db.commit()
    db.close()
    store = EmbeddedStore(path, embedder)
    try:
        assert [c.id for c in store.search("lists", k=5, mode="bm25")] == ["c1"]
        assert [c.id for c in store.search("sequences", k=5, mode="bm25")] == ["c1"]  # heading
        assert store.sources() == {"guide.md": ""}  # re-ingest re-embeds it
        with sqlite3.connect(path) as check:
            meta = dict(check.execute("SELECT key, value FROM meta").fetchall())
            context = check.execute("SELECT context FROM chunks").fetchone()[0]
        assert meta["schema_version"] == "2"
        assert context == "Python Guide > Sequences"
    finally:
        store.close()
