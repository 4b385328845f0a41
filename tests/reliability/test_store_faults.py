"""Reliability suite, part 2 (store faults), fast: Weaviate batches faulted during ingest (retried
by the policy alone, or every chunk not stored named), re-runs converge exactly; the embedded store
survives kill -9 at several points and two concurrent ingests, intact and exact."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragloom.core.documents import Chunk
from ragloom.core.errors import StoreUnavailableError, StoreWriteError
from ragloom.core.testing.embedders import HashingEmbedder
from ragloom.core.testing.weaviate_server import WeaviateTestServer
from ragloom.tools.stores import embedded
from ragloom.tools.stores.weaviate_store import DEFAULT_TENANT, WeaviateStore
from tests.reliability.store_faults import (
    CORPUS,
    KillConfig,
    WeaviateFaultConfig,
    _Reference,
    _weaviate_store,
    corpus_subset,
    reference_run,
    run_concurrent_ingests,
    run_kill_resume,
    run_weaviate_faults,
)

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="python-docs corpus not present")


def _chunks(n: int = 6, source: str = "guide.md") -> list[Chunk]:
    return [Chunk(id=f"{source}#{i}", source=source, text=f"Part {i} of the guide: item {i}.",
                  position=i) for i in range(n)]


@pytest.fixture(scope="module")
def server() -> Iterator[WeaviateTestServer]:
    with WeaviateTestServer() as running:
        yield running


@pytest.fixture
def open_store(server: WeaviateTestServer) -> Iterator[tuple[WeaviateStore, list[float]]]:
    server.reset()
    sleeps: list[float] = []
    config = WeaviateFaultConfig(batch_size=2, insert_timeout=0.3, max_retries=3)
    with _weaviate_store(server, "Faults", config, sleeps) as store:
        yield store, sleeps


def _stored_ids(server: WeaviateTestServer) -> list[str]:
    return [o.properties["chunk_id"] for o in server.objects("Faults", DEFAULT_TENANT).values()]


# -- Weaviate -------------------------------------------------------------------------------------


def test_weaviate_ingest_under_batch_faults_converges(tmp_path: Path) -> None:
    corpus = corpus_subset(tmp_path / "corpus", 6)
    config = WeaviateFaultConfig(files=6, rate=0.6, seed=3, batch_size=8, insert_timeout=0.2,
                                 slow_s=0.3)
    summary = run_weaviate_faults(corpus, tmp_path, config)
    assert summary["violations"] == {k: 0 for k in summary["violations"]}, summary
    assert set(summary["faults_injected"]) == {"unavailable", "drop", "slow"}
    assert summary["objects_kept_before_drop"] > 0  # some batches were half-stored
    assert summary["first_run_files_failed"] >= 1  # retries ran out for some batches...
    assert summary["first_run_failure_codes"] == {"store_write": summary["first_run_files_failed"]}
    assert summary["failed_chunks_reported"] > 0  # ...and their chunks were named
    assert 0 < summary["retries"] == summary["policy_waits"]
    assert summary["server_batch_calls"] == summary["adapter_batch_attempts"]
    assert summary["max_attempts_per_batch"] == summary["policy_max_attempts"] == 4
    assert summary["chunks_stored"] == summary["chunks_expected"] > 50
    assert summary["duplicates"] == 0
    # a failed file is written again, unless the server had kept all of it (a late reply)
    assert 1 <= summary["rerun_files_ingested"] <= summary["first_run_files_failed"]


def test_unavailable_batches_are_retried_by_the_policy_alone(
    open_store: tuple[WeaviateStore, list[float]], server: WeaviateTestServer
) -> None:
    """insert_many would retry UNAVAILABLE itself, sleeping 1 + 2 s unseen by the policy."""
    store, sleeps = open_store
    server.fail_next("BatchObjects", times=2)
    server.calls.clear()
    assert store.upsert(_chunks(2)) == 2  # one chunk batch, then the source record batch
    assert server.calls["BatchObjects"] == 4
    assert (store.write_stats.retries, store.write_stats.batch_calls) == (2, 4)
    assert len(sleeps) == 2 and max(sleeps) < 0.5  # the policy's waits, nothing else
    assert sorted(_stored_ids(server)) == [c.id for c in _chunks(2)]


@pytest.mark.parametrize("mode", ["bm25", "vector"])
def test_unavailable_reads_are_retried_by_the_policy_alone(
    open_store: tuple[WeaviateStore, list[float]], server: WeaviateTestServer, mode: str
) -> None:
    """The client's own search retry would sleep 1 + 2 s here, unseen by the policy."""
    store, sleeps = open_store
    store.upsert(_chunks(3))
    sleeps.clear()
    server.fail_next("Search", times=2)
    server.calls.clear()
    found = store.search("guide item", k=2, mode=mode)  # type: ignore[arg-type]
    assert len(found) == 2
    assert server.calls["Search"] == 3
    assert len(sleeps) == 2 and max(sleeps) < 0.5  # the policy's waits, nothing else
    server.fail_next("Aggregate", times=1)
    assert store.count() == 3
    server.fail_next("Search", times=10)  # past the policy: a typed error, after 4 attempts
    server.calls.clear()
    with pytest.raises(StoreUnavailableError):
        store.search("guide item", k=2, mode=mode)  # type: ignore[arg-type]
    assert server.calls["Search"] == 4


def test_a_batch_cut_off_after_part_was_stored_is_written_again_without_duplicates(
    open_store: tuple[WeaviateStore, list[float]], server: WeaviateTestServer
) -> None:
    store, _ = open_store
    store.batch_size = 6
    server.drop_mid_batch(after=4)
    assert store.upsert(_chunks(6)) == 6
    assert store.write_stats.retries == 1
    assert sorted(_stored_ids(server)) == sorted(c.id for c in _chunks(6))  # 6 objects, not 10
    # cut off every time: all 6 reported though the server kept 4; the re-run writes them in place
    chunks = _chunks(6, source="other.md")
    server.drop_mid_batch(after=4, times=4)
    with pytest.raises(StoreWriteError) as err:
        store.upsert(chunks)
    assert set(err.value.failed) == {c.id for c in chunks}
    assert len(_stored_ids(server)) == 10
    assert store.upsert(chunks) == 6
    assert sorted(_stored_ids(server)) == sorted(c.id for c in [*_chunks(6), *chunks])
    assert store.count() == 12


def test_a_reply_slower_than_the_timeout_is_retried_without_duplicates(
    open_store: tuple[WeaviateStore, list[float]], server: WeaviateTestServer
) -> None:
    store, _ = open_store
    server.slow_next("BatchObjects", 0.5)  # stored, then answered past the 0.3 s timeout
    assert store.upsert(_chunks(2)) == 2
    assert store.write_stats.retries == 1
    assert sorted(_stored_ids(server)) == [c.id for c in _chunks(2)]


def test_a_batch_deadline_from_the_client_is_retryable() -> None:
    """insert_many (the fallback path) reports a timed-out batch as text only."""
    from weaviate.exceptions import WeaviateBatchError

    from ragloom.tools.stores.weaviate_store import map_weaviate_error

    late = WeaviateBatchError("Deadline Exceeded")
    assert isinstance(map_weaviate_error(late, "insert"), StoreUnavailableError)


def test_batches_that_run_out_of_retries_name_exactly_the_chunks_not_stored(
    open_store: tuple[WeaviateStore, list[float]], server: WeaviateTestServer
) -> None:
    store, _ = open_store
    chunks = _chunks(6)
    calls = iter(range(100))
    server.batch_faults(lambda size: None if next(calls) == 0 else ("unavailable", 0.0))
    with pytest.raises(StoreWriteError, match=r"4 of 6 chunks of guide\.md were not stored") as err:
        store.replace_source("guide.md", "h1", chunks)
    server.batch_faults(None)
    assert set(err.value.failed) == {c.id for c in chunks[2:]}
    assert err.value.sources == ["guide.md"]
    assert "UNAVAILABLE" in err.value.failed[chunks[2].id]
    assert sorted(_stored_ids(server)) == [c.id for c in chunks[:2]]  # the first batch
    assert store.write_stats.max_attempts == 4 and store.write_stats.retries == 3
    assert store.sources() == {}  # no content hash: the next ingest redoes the source
    assert store.replace_source("guide.md", "h1", chunks) == 6
    assert sorted(_stored_ids(server)) == sorted(c.id for c in chunks)
    assert store.sources() == {"guide.md": "h1"}


# -- embedded store -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, _Reference]:
    """Eight python-docs pages in three overlapping-ready folders, and their reference run."""
    root = tmp_path_factory.mktemp("store-faults")
    corpus_subset(root / "corpus", 8, parts=3)
    return root, reference_run(root, "corpus")


def test_kill_9_mid_ingest_then_rerun_is_exact_and_intact(docs: tuple[Path, _Reference]) -> None:
    root, reference = docs
    summary = run_kill_resume(root, reference, KillConfig(files=8, kill_at=(0.2, 0.6)))
    assert summary["violations"] == {k: 0 for k in summary["violations"]}, summary
    assert summary["kills_with_work_left"] >= 1, summary["kills"]
    assert all(k["integrity"] == "ok" for k in summary["kills"])
    assert summary["chunks_stored"] == summary["chunks_expected"] == len(reference.ids) > 40
    assert (summary["duplicates"], summary["integrity_check"]) == (0, "ok")


def test_two_concurrent_ingests_of_overlapping_folders(docs: tuple[Path, _Reference]) -> None:
    root, reference = docs
    summary = run_concurrent_ingests(
        root, reference, [["corpus/part1", "corpus/part2"], ["corpus/part2", "corpus/part3"]]
    )
    assert summary["violations"] == {k: 0 for k in summary["violations"]}, summary
    assert all(o["returncode"] == 0 or o["busy"] for o in summary["ingests"])
    assert summary["chunks_stored"] == len(reference.ids)
    assert (summary["duplicates"], summary["integrity_check"]) == (0, "ok")


def test_a_writer_locked_out_gets_a_typed_busy_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded, "_BUSY_TIMEOUT_MS", 100)
    store = embedded.EmbeddedStore(tmp_path / "s.db", HashingEmbedder(32))
    other = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    with pytest.raises(StoreUnavailableError, match="busy"):
        store.upsert(_chunks(2))
    other.execute("ROLLBACK")
    other.close()
    assert store.upsert(_chunks(2)) == 2
    assert store.count() == 2
    store.close()


def test_opening_a_new_store_another_process_holds_locked_is_a_typed_busy_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second of two ingests started at once on a new file must not fail untyped."""
    monkeypatch.setattr(embedded, "_BUSY_TIMEOUT_MS", 100)
    other = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # creating it: no WAL switch possible until it commits
    with pytest.raises(StoreUnavailableError, match="busy"):
        embedded.EmbeddedStore(tmp_path / "s.db", HashingEmbedder(32))
    other.execute("ROLLBACK")
    other.close()
    store = embedded.EmbeddedStore(tmp_path / "s.db", HashingEmbedder(32))
    assert store.upsert(_chunks(2)) == 2
    store.close()
