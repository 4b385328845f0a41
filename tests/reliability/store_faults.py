"""The store fault suite (part 2 of the reliability suite), shared by the test and the benchmark.

Weaviate (`run_weaviate_faults`): a folder of python-docs pages is ingested through the real
weaviate-client into the Weaviate-protocol test server while a seeded share of BatchObjects calls
is faulted (UNAVAILABLE; the connection cut after the server stored part of the batch; replies
slower than the client's insert timeout, after the server stored the batch). Every chunk must end
stored or named in a `StoreWriteError` (its file reported with code `store_write`); the policy
must be the only retry layer (server calls == attempts counted, no batch over the policy's
attempts); a re-run without faults must converge to exactly the chunks of a fault-free reference
run, with no duplicates and every content hash recorded.

Embedded (`run_kill_resume`, `run_concurrent_ingests`): `ragloom ingest` runs as a real
subprocess (hashing embedder, chosen through RAGLOOM_* settings) and is killed with SIGKILL at
several points; after each kill `PRAGMA integrity_check` (and FTS5's integrity-check) must say ok,
and the last, uninterrupted run must leave exactly the reference chunks. Two ingests of
overlapping folders into one store run at once: each ends with exit 0, or exit 1 with a typed
"busy" error (never a traceback); the store ends exact and intact.

    summary = run_weaviate_faults(corpus_dir, tmp_path, WeaviateFaultConfig(files=12))
    assert summary["violations"] == {k: 0 for k in summary["violations"]}
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "datasets" / "python-docs" / "corpus" / "library"
WEAVIATE_FAULT_KINDS = ("unavailable", "drop", "slow")


def corpus_subset(dest: Path, files: int, *, parts: int = 1, source: Path = CORPUS) -> Path:
    """Copy the first `files` python-docs pages (sorted) into `dest`, dealt round-robin into
    `parts` sub-folders `part1..partN` (flat when `parts` is 1); returns `dest`."""
    pages = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix in (".rst", ".md"))
    if len(pages) < files:
        raise FileNotFoundError(f"{source} has {len(pages)} pages, {files} wanted")
    for i, page in enumerate(pages[:files]):
        folder = dest / f"part{i % parts + 1}" if parts > 1 else dest
        target = folder / page.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(page, target)
    return dest


# -- Weaviate -------------------------------------------------------------------------------------


class BatchFaults:
    """Seeded fault draw for `WeaviateTestServer.batch_faults`: `rate` of BatchObjects calls are
    faulted, the kind drawn uniformly from `kinds` (thread-safe, counted)."""

    def __init__(self, rate: float, *, seed: int = 13, kinds: Sequence[str] = WEAVIATE_FAULT_KINDS,
                 slow_s: float = 0.8) -> None:
        unknown = set(kinds) - set(WEAVIATE_FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self.rate = rate
        self.kinds = tuple(kinds)
        self.slow_s = slow_s
        self.calls = 0
        self.injected: Counter[str] = Counter()
        self.kept_before_drop = 0  # objects the server stored in batches it then cut off
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def __call__(self, size: int) -> tuple[str, float] | None:
        with self._lock:
            self.calls += 1
            if self._rng.random() >= self.rate:
                return None
            kind = self._rng.choice(self.kinds)
            self.injected[kind] += 1
            if kind == "drop":
                keep = self._rng.randrange(size) if size > 1 else 0
                self.kept_before_drop += keep
                return ("drop", keep)
            return ("slow", self.slow_s) if kind == "slow" else ("unavailable", 0.0)


@dataclass
class WeaviateFaultConfig:
    """Sizes of the Weaviate part: `files` pages, `rate` of batch calls faulted, the adapter's
    policy (`max_retries`), its batch size and the client's insert timeout (slow replies come
    `slow_s` late, past it)."""

    files: int = 40
    rate: float = 0.3
    seed: int = 13
    max_retries: int = 3
    batch_size: int = 16
    insert_timeout: float = 0.5
    slow_s: float = 0.8
    chunk_tokens: int = 256
    overlap: int = 32


def _weaviate_store(server: Any, collection: str, config: WeaviateFaultConfig,
                    sleeps: list[float]) -> Any:
    """A WeaviateStore on `server` with a short insert timeout; the policy's waits recorded."""
    import weaviate
    from weaviate.classes.init import AdditionalConfig, Timeout

    from ragloom.core.retry import retry_policy
    from ragloom.core.testing.embedders import HashingEmbedder
    from ragloom.tools.stores.weaviate_store import WeaviateStore

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    client = weaviate.connect_to_local(
        host="127.0.0.1", port=server.http_port, grpc_port=server.grpc_port,
        skip_init_checks=True,
        additional_config=AdditionalConfig(
            timeout=Timeout(init=5, query=10, insert=config.insert_timeout)
        ),
    )
    policy = retry_policy(max_retries=config.max_retries, deadline=30.0, initial_wait=0.01,
                          max_wait=0.1, jitter=0.01, sleep=sleep, operation="weaviate")
    return WeaviateStore(client, HashingEmbedder(64), collection=collection, retry=policy,
                         batch_size=config.batch_size, owns_client=True)


def _chunk_ids(server: Any, collection: str) -> list[str]:
    """chunk_id of every object stored in the collection's default tenant (with repeats)."""
    from ragloom.tools.stores.weaviate_store import DEFAULT_TENANT

    return [o.properties["chunk_id"] for o in server.objects(collection, DEFAULT_TENANT).values()]


def run_weaviate_faults(corpus: Path, root: Path, config: WeaviateFaultConfig) -> dict[str, Any]:
    """The Weaviate part: reference run, faulted run, clean re-run; counts and violations."""
    import structlog

    from ragloom.core.logging import configure_logging
    from ragloom.core.testing.weaviate_server import WeaviateTestServer
    from ragloom.tools.ingest.pipeline import ingest_paths

    if not structlog.is_configured():  # structlog's default prints every retry to stdout
        configure_logging("ERROR")

    options = {"root": root, "progress": False, "chunk_tokens": config.chunk_tokens,
               "overlap": config.overlap}
    sleeps: list[float] = []
    faults = BatchFaults(config.rate, seed=config.seed, slow_s=config.slow_s)
    with WeaviateTestServer() as server:
        with _weaviate_store(server, "Reference", config, []) as reference:
            ingest_paths([corpus], reference, **options)
            expected = set(_chunk_ids(server, "Reference"))
            expected_sources = reference.sources()
        with _weaviate_store(server, "Faulty", config, sleeps) as store:
            server.calls.clear()
            server.batch_faults(faults)
            started = time.monotonic()
            first = ingest_paths([corpus], store, **options)
            faulted_s = time.monotonic() - started
            server.batch_faults(None)
            batch_calls_seen = server.calls["BatchObjects"]
            after_faults = _chunk_ids(server, "Faulty")
            stats = copy.deepcopy(store.write_stats)  # the faulted run's, not the re-run's
            reported = set(stats.failed_chunks)
            second = ingest_paths([corpus], store, **options)
            final = _chunk_ids(server, "Faulty")
            final_sources = store.sources()
            counted = store.count()
    store_failures = [f for f in first.failed if f.source != "(store)"]
    lost = expected - set(after_faults) - reported
    in_report = {chunk for f in store_failures for chunk in f.chunks}
    summary: dict[str, Any] = {
        "config": asdict(config),
        "files": len(expected_sources),
        "chunks_expected": len(expected),
        "batch_calls": faults.calls,
        "faults_injected": dict(sorted(faults.injected.items())),
        "faulted_share": round(sum(faults.injected.values()) / max(1, faults.calls), 3),
        "objects_kept_before_drop": faults.kept_before_drop,
        "first_run_s": round(faulted_s, 2),
        "first_run_files_ingested": first.ingested,
        "first_run_files_failed": len(store_failures),
        "first_run_failure_codes": dict(Counter(f.code for f in store_failures)),
        "first_run_chunks_stored": len(set(after_faults)),
        "failed_chunks_reported": len(reported),
        "failed_chunks_reported_but_stored": len(reported & set(after_faults)),
        "retries": stats.retries,
        "policy_waits": len(sleeps),
        "max_attempts_per_batch": stats.max_attempts,
        "policy_max_attempts": 1 + config.max_retries,
        "server_batch_calls": batch_calls_seen,
        "adapter_batch_attempts": stats.batch_calls,
        "objects_resent": stats.objects_resent,
        "rerun_files_ingested": second.ingested,
        "rerun_files_skipped": second.skipped_unchanged,
        "chunks_stored": counted,
        "duplicates": len(final) - len(set(final)),
        "exit_codes": [first.exit_code, second.exit_code],
    }
    summary["violations"] = {
        "lost_unreported": len(lost),
        "reported_not_expected": len(reported - expected),
        "reported_not_in_ingest_report": len(reported - in_report),
        "untyped_failures": sum(f.code != "store_write" for f in store_failures),
        "hidden_retries": abs(batch_calls_seen - stats.batch_calls),
        "over_policy": int(stats.max_attempts > 1 + config.max_retries),
        "rerun_failed": len(second.failed),
        "count_mismatch": abs(counted - len(expected)) + len(set(final) ^ expected),
        "duplicates": summary["duplicates"],
        "hash_mismatch": int(final_sources != expected_sources),
    }
    return summary


def weaviate_rows(s: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The rows `make reliability` prints for the Weaviate half of part 2."""
    return [
        ("files / chunks expected", f"{s['files']} / {s['chunks_expected']}"),
        ("batch calls faulted", f"{s['faulted_share']:.1%} of {s['batch_calls']} "
                                f"{s['faults_injected']}"),
        ("objects stored before a cut", s["objects_kept_before_drop"]),
        ("faulted run: files in / failed", f"{s['first_run_files_ingested']} / "
         f"{s['first_run_files_failed']} {s['first_run_failure_codes']}"),
        ("faulted run: chunks stored", s["first_run_chunks_stored"]),
        ("failed chunks reported", f"{s['failed_chunks_reported']} "
         f"({s['failed_chunks_reported_but_stored']} of them half-stored by the server)"),
        ("retries (policy waits)", f"{s['retries']} ({s['policy_waits']})"),
        ("max attempts per batch", f"{s['max_attempts_per_batch']} "
                                   f"(policy {s['policy_max_attempts']})"),
        ("server calls vs attempts", f"{s['server_batch_calls']} vs "
                                     f"{s['adapter_batch_attempts']}"),
        ("re-run: files in / skipped", f"{s['rerun_files_ingested']} / "
                                       f"{s['rerun_files_skipped']}"),
        ("chunks stored / duplicates", f"{s['chunks_stored']} / {s['duplicates']}"),
        ("violations", sum(s["violations"].values())),
    ]


# -- embedded store: real `ragloom ingest` processes ------------------------------------------


def ingest_command(*paths: str | Path) -> list[str]:
    """`ragloom ingest PATHS --json` with this interpreter."""
    return [sys.executable, "-m", "ragloom", "ingest", *map(str, paths), "--json"]


def ingest_env(store: Path) -> dict[str, str]:
    """The environment for an ingest subprocess: hashing embedder, embedded store at `store`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGLOOM_", "OPENAI_"))}
    env.update({
        "RAGLOOM_EMBEDDER__KIND": "hashing", "RAGLOOM_EMBEDDER__DIMENSIONS": "64",
        "RAGLOOM_STORE__KIND": "embedded", "RAGLOOM_STORE__PATH": str(store),
        # 400-piece chunks: enough of them in a few pages for kills to land mid-ingest
        "RAGLOOM_RETRIEVAL__CHUNK_TOKENS": "400", "RAGLOOM_RETRIEVAL__CHUNK_OVERLAP": "48",
        "RAGLOOM_LOG_FORMAT": "json", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    })
    return env


@dataclass
class StoreState:
    """What one SQLite store file holds, read after its writers are gone."""

    chunks: int
    ids: set[str]
    duplicates: int
    sources: dict[str, str]
    integrity: str
    fts_ok: bool


def store_state(path: Path) -> StoreState:
    """Counts, ids and integrity of an embedded store file (`PRAGMA integrity_check`, FTS5)."""
    conn = sqlite3.connect(path, timeout=30)
    try:
        integrity = "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
        try:
            conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")
            fts_ok = True
        except sqlite3.DatabaseError:
            fts_ok = False
        rows = conn.execute("SELECT tenant, id, source, position FROM chunks").fetchall()
        sources = dict(conn.execute("SELECT source, content_hash FROM documents").fetchall())
    finally:
        conn.close()
    places = Counter((t, s, p) for t, _, s, p in rows)
    duplicates = (len(rows) - len({(t, i) for t, i, _, _ in rows})
                  + sum(n - 1 for n in places.values()))
    return StoreState(len(rows), {i for _, i, _, _ in rows}, duplicates, sources, integrity,
                      fts_ok)


def _stored_count(path: Path) -> int:
    """Chunks committed so far (0 before the schema exists); never creates the file."""
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            return int(conn.execute("SELECT count(*) FROM chunks").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def run_ingest(cwd: Path, store: Path, *paths: str | Path, timeout: float = 300.0
               ) -> subprocess.CompletedProcess[str]:
    """One `ragloom ingest` run to its end."""
    return subprocess.run(ingest_command(*paths), cwd=cwd, env=ingest_env(store), text=True,
                          capture_output=True, timeout=timeout, check=False)


def _kill_at(cwd: Path, store: Path, folder: str, at_chunks: int, delay: float,
             timeout: float) -> dict[str, Any]:
    """Start an ingest, SIGKILL it `delay` s after the store holds `at_chunks` chunks."""
    proc = subprocess.Popen(ingest_command(folder), cwd=cwd, env=ingest_env(store),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if _stored_count(store) >= at_chunks:
                time.sleep(delay)
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.003)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {"at_chunks": at_chunks, "killed": proc.returncode == -signal.SIGKILL,
            "returncode": proc.returncode}


@dataclass
class KillConfig:
    """Sizes of the kill -9 half: `files` pages, kills when the store reaches each fraction of
    the expected chunks (each resumed run killed again), a seeded delay of up to `jitter_s`."""

    files: int = 30
    kill_at: tuple[float, ...] = (0.1, 0.4, 0.7)
    jitter_s: float = 0.01
    seed: int = 13
    timeout_s: float = 300.0


@dataclass
class _Reference:
    folder: str
    ids: set[str]
    sources: dict[str, str] = field(default_factory=dict)


def reference_run(cwd: Path, folder: str) -> _Reference:
    """Ingest `folder` (relative to `cwd`) once into a fresh store: the chunks expected."""
    store = cwd / "reference.db"
    done = run_ingest(cwd, store, folder)
    if done.returncode != 0:
        raise RuntimeError(f"reference ingest failed ({done.returncode}): {done.stderr[-2000:]}")
    state = store_state(store)
    return _Reference(folder, state.ids, state.sources)


def run_kill_resume(cwd: Path, reference: _Reference, config: KillConfig) -> dict[str, Any]:
    """Kill ingests at the configured points, check integrity after each, finish; summary."""
    rng = random.Random(config.seed)
    store = cwd / "killed.db"
    expected = len(reference.ids)
    kills: list[dict[str, Any]] = []
    for fraction in config.kill_at:
        kill = _kill_at(cwd, store, reference.folder, max(1, int(expected * fraction)),
                        rng.uniform(0, config.jitter_s), config.timeout_s)
        state = store_state(store)
        kill.update(chunks_after=state.chunks, integrity=state.integrity, fts_ok=state.fts_ok,
                    duplicates=state.duplicates, stray=len(state.ids - reference.ids))
        kills.append(kill)
    started = time.monotonic()
    final_run = run_ingest(cwd, store, reference.folder, timeout=config.timeout_s)
    final = store_state(store)
    summary: dict[str, Any] = {
        "config": asdict(config),
        "files": len(reference.sources),
        "chunks_expected": expected,
        "kills": kills,
        "killed_mid_run": sum(k["killed"] for k in kills),
        "kills_with_work_left": sum(k["killed"] and k["chunks_after"] < expected for k in kills),
        "final_exit_code": final_run.returncode,
        "final_run_s": round(time.monotonic() - started, 2),
        "chunks_stored": final.chunks,
        "duplicates": final.duplicates,
        "integrity_check": final.integrity,
        "fts_integrity_ok": final.fts_ok,
    }
    summary["violations"] = {
        "not_killed": sum(not k["killed"] for k in kills),
        "corrupt_after_kill": sum(k["integrity"] != "ok" or not k["fts_ok"] for k in kills),
        "duplicates_after_kill": sum(k["duplicates"] + k["stray"] for k in kills),
        "final_exit": int(final_run.returncode != 0),
        "count_mismatch": abs(final.chunks - expected) + len(final.ids ^ reference.ids),
        "duplicates": final.duplicates,
        "corrupt": int(final.integrity != "ok" or not final.fts_ok),
        "hash_mismatch": int(final.sources != reference.sources),
    }
    return summary


def run_concurrent_ingests(cwd: Path, reference: _Reference, folders: Sequence[Sequence[str]],
                           timeout: float = 300.0) -> dict[str, Any]:
    """Start one ingest per entry of `folders` at once on one store; each must end 0 or with a
    typed busy error (then it is run again); the store must end exact and intact."""
    store = cwd / "shared.db"
    procs = [subprocess.Popen(ingest_command(*paths), cwd=cwd, env=ingest_env(store), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for paths in folders]
    outcomes: list[dict[str, Any]] = []
    for proc, paths in zip(procs, folders, strict=True):
        out, err = proc.communicate(timeout=timeout)
        busy = proc.returncode == 1 and "store_unavailable" in err and "busy" in err
        outcomes.append({"paths": list(paths), "returncode": proc.returncode, "busy": busy,
                         "traceback": "Traceback" in err or "Traceback" in out,
                         "failures": _failures(out), "stderr": err[-600:]})
        if busy:
            outcomes[-1]["rerun_returncode"] = run_ingest(cwd, store, *paths).returncode
    final = store_state(store)
    summary: dict[str, Any] = {
        "ingests": outcomes,
        "chunks_expected": len(reference.ids),
        "chunks_stored": final.chunks,
        "duplicates": final.duplicates,
        "integrity_check": final.integrity,
        "fts_integrity_ok": final.fts_ok,
        "busy_errors": sum(o["busy"] for o in outcomes),
    }
    summary["violations"] = {
        "failed": sum(o["returncode"] != 0 and not o["busy"] for o in outcomes),
        "tracebacks": sum(o["traceback"] for o in outcomes),
        "count_mismatch": abs(final.chunks - len(reference.ids)) + len(final.ids ^ reference.ids),
        "duplicates": final.duplicates,
        "corrupt": int(final.integrity != "ok" or not final.fts_ok),
        "hash_mismatch": int(final.sources != reference.sources),
    }
    return summary


def _failures(report: str) -> list[tuple[str, str, str]] | None:
    """(source, code, reason) of each failure in an `ingest --json` report, for the summary."""
    try:
        failed = json.loads(report).get("failed", [])
    except ValueError:
        return None
    return [(f["source"], f["code"], f["reason"][:200]) for f in failed]


def big_page(dest: Path, size: int, *, source: Path = CORPUS) -> Path:
    """One page of at least `size` bytes made of python-docs pages end to end, in `dest`."""
    texts: list[str] = []
    for page in sorted(source.glob("*.rst")):
        texts.append(page.read_text(encoding="utf-8"))
        if sum(map(len, texts)) >= size:
            break
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "big.rst"
    target.write_text("\n\n".join(texts), encoding="utf-8")
    return target


def run_kill_in_transaction(cwd: Path, reference: _Reference, *, spilled: int = 256_000,
                            timeout: float = 300.0) -> dict[str, Any]:
    """Kill an ingest of one big page inside its write transaction, then finish it.

    The source's chunks are written in one transaction larger than SQLite's page cache, so
    pages spill into the WAL before the commit: the kill fires when the WAL has grown by
    `spilled` bytes while no chunk is committed yet. After recovery the store must hold none of
    the page (the transaction rolled back), pass integrity checks, and the re-run be exact.
    """
    store = cwd / "big.db"
    wal = store.with_name(store.name + "-wal")
    proc = subprocess.Popen(ingest_command(reference.folder), cwd=cwd, env=ingest_env(store),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base: int | None = None
    wal_at_kill = 0
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            size = wal.stat().st_size if wal.exists() else 0
            if base is None and size:
                base = size  # the schema's own commit
            if base is not None and size - base >= spilled and _stored_count(store) == 0:
                os.kill(proc.pid, signal.SIGKILL)
                wal_at_kill = size
                break
            time.sleep(0.002)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    after = store_state(store)
    final_run = run_ingest(cwd, store, reference.folder, timeout=timeout)
    final = store_state(store)
    killed = proc.returncode == -signal.SIGKILL
    summary: dict[str, Any] = {
        "chunks_expected": len(reference.ids),
        "killed_in_transaction": killed and wal_at_kill > 0 and after.chunks == 0,
        "wal_bytes_at_kill": wal_at_kill,
        "chunks_after_kill": after.chunks,
        "sources_after_kill": len(after.sources),
        "integrity_after_kill": after.integrity,
        "chunks_stored": final.chunks,
        "duplicates": final.duplicates,
        "integrity_check": final.integrity,
    }
    summary["violations"] = {
        "not_killed_in_transaction": int(not summary["killed_in_transaction"]),
        "partial_after_kill": int(after.chunks not in (0, len(reference.ids))
                                  or bool(after.chunks) != bool(after.sources)),
        "corrupt": int(after.integrity != "ok" or not after.fts_ok or final.integrity != "ok"
                       or not final.fts_ok),
        "final_exit": int(final_run.returncode != 0),
        "count_mismatch": abs(final.chunks - len(reference.ids)) + len(final.ids ^ reference.ids),
        "duplicates": final.duplicates,
        "hash_mismatch": int(final.sources != reference.sources),
    }
    return summary


def embedded_rows(kill: Mapping[str, Any], concurrent: Mapping[str, Any],
                  in_transaction: Mapping[str, Any] | None = None) -> list[tuple[str, Any]]:
    """The rows `make reliability` prints for the embedded half of part 2."""
    landed = ", ".join(f"{k['chunks_after']}" for k in kill["kills"])
    codes = ", ".join(str(o["returncode"]) for o in concurrent["ingests"])
    extra = 0 if in_transaction is None else sum(in_transaction["violations"].values())
    return [
        ("files / chunks expected", f"{kill['files']} / {kill['chunks_expected']}"),
        ("kill -9 (chunks stored at each)", f"{kill['killed_mid_run']} of "
         f"{len(kill['kills'])}, {kill['kills_with_work_left']} with work left ({landed})"),
        ("integrity after each kill", "ok" if not kill["violations"]["corrupt_after_kill"]
         else f"{kill['violations']['corrupt_after_kill']} corrupt"),
        ("after re-run: stored / dups", f"{kill['chunks_stored']} / {kill['duplicates']} "
                                        f"(integrity_check {kill['integrity_check']})"),
        *([] if in_transaction is None else [
            ("kill -9 inside a transaction", "yes" if in_transaction["killed_in_transaction"]
             else "no"),
            ("  WAL at kill / chunks after", f"{in_transaction['wal_bytes_at_kill']:,} B / "
             f"{in_transaction['chunks_after_kill']} of {in_transaction['chunks_expected']} "
             f"(integrity_check {in_transaction['integrity_after_kill']})"),
            ("  re-run: stored / dups", f"{in_transaction['chunks_stored']} / "
                                        f"{in_transaction['duplicates']}"),
        ]),
        ("concurrent ingests: exit codes", f"{codes} ({concurrent['busy_errors']} busy)"),
        ("concurrent: stored / dups", f"{concurrent['chunks_stored']} / "
         f"{concurrent['duplicates']} of {concurrent['chunks_expected']} "
         f"(integrity_check {concurrent['integrity_check']})"),
        ("violations", sum(kill["violations"].values())
         + sum(concurrent["violations"].values()) + extra),
    ]
