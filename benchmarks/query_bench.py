"""Query latency of the embedded store at 10k and 100k chunks, per mode, vs a numpy floor (JSON).

Synthetic corpora: chunk texts are ~120 words drawn from a Zipf-distributed 20k-word vocabulary
(so BM25 posting lists look like real text), and vectors are random unit vectors seeded from the
text (`RandomEmbedder`: 384 dims, instant), so building 100k chunks takes minutes, not hours.
Queries are 3-5 vocabulary words; their vectors come from the same embedder, so the numbers are
store latency without model time (the local model's own query time is measured separately).

Per size it reports p50/p95 milliseconds for bm25, vector (exact), hybrid, vector with the hnswlib
ANN index (`ann=True`), ANN recall@10 against exact, and the floor: a raw numpy
`matrix @ q` + argpartition top-10 over the same matrix (BLAS limited to one thread, as in the
store), measured in the same run, interleaved query by query with the store's modes.

    python benchmarks/query_bench.py --sizes 10000 100000 --queries 200 [--pydocs STORE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragloom.core.documents import Chunk, make_chunk_id
from ragloom.core.logging import configure_logging
from ragloom.tools.stores.embedded import EmbeddedStore, single_thread_blas


class RandomEmbedder:
    """Random unit vectors, deterministic per text (a stand-in for a model in latency tests)."""

    name = "random-384"
    dimensions = 384

    def _one(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        vector = np.random.default_rng(seed).standard_normal(self.dimensions).astype(np.float32)
        return vector / np.linalg.norm(vector)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return np.stack([self._one(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._one(text)


class PerturbedEmbedder(RandomEmbedder):
    """Real vectors with noise: each text maps to one of `base`'s rows plus Gaussian noise
    (cosine ~0.9 to that row), so the data keeps the cluster structure of real embeddings
    (uniform random vectors are HNSW's worst case and understate ANN recall)."""

    name = "perturbed-minilm-384"

    def __init__(self, base: np.ndarray, sigma: float = 0.025) -> None:
        self.base = base
        self.sigma = sigma

    def _one(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        rng = np.random.default_rng(seed)
        vector = self.base[seed % len(self.base)] + self.sigma * rng.standard_normal(
            self.dimensions).astype(np.float32)
        return (vector / np.linalg.norm(vector)).astype(np.float32)


def _vocabulary(size: int, rng: np.random.Generator) -> np.ndarray:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return np.array(["".join(rng.choice(letters, size=rng.integers(3, 10))) for _ in range(size)])


def _zipf_probabilities(size: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, size + 1) ** 1.07
    return weights / weights.sum()


def build(
    path: Path, size: int, embedder: RandomEmbedder, *, seed: int = 1
) -> tuple[EmbeddedStore, float]:
    """A store of `size` synthetic chunks at `path` (reused if already complete)."""
    store = EmbeddedStore(path, embedder)
    if store.count() == size:
        return store, 0.0
    rng = np.random.default_rng(seed)
    vocab = _vocabulary(20_000, rng)
    probs = _zipf_probabilities(len(vocab))
    started = time.perf_counter()
    for begin in range(0, size, 5000):
        batch = []
        count = min(size, begin + 5000) - begin
        lengths = rng.integers(80, 160, size=count)
        words = rng.choice(vocab, size=int(lengths.sum()), p=probs)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        for j, i in enumerate(range(begin, begin + count)):
            text = " ".join(words[offsets[j]:offsets[j + 1]])
            source = f"doc{i // 20:05d}.txt"
            batch.append(Chunk(id=make_chunk_id(source, i, text), source=source, text=text,
                               position=i % 20))
        store.upsert(batch)
    return store, time.perf_counter() - started


def _percentiles(samples: list[float]) -> dict[str, float]:
    array = np.array(samples) * 1000
    return {"p50_ms": round(float(np.percentile(array, 50)), 3),
            "p95_ms": round(float(np.percentile(array, 95)), 3)}


def _timed(
    methods: dict[str, Callable[[str], Any]], queries: list[str]
) -> tuple[dict[str, dict[str, float]], dict[str, list[Any]]]:
    """Run every method on every query, interleaved (method order rotates per query), so all
    methods share the same machine load; returns percentiles and results per method."""
    names = list(methods)
    for name in names:
        methods[name](queries[0])  # warm (loads the matrix / builds the ANN index)
    samples: dict[str, list[float]] = {n: [] for n in names}
    results: dict[str, list[Any]] = {n: [] for n in names}
    for number, query in enumerate(queries):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            results[name].append(methods[name](query))
            samples[name].append(time.perf_counter() - started)
    return {n: _percentiles(samples[n]) for n in names}, results


def _recall(exact: list[Any], approx: list[Any], k: int) -> float:
    return round(float(np.mean([
        len({c.id for c in e} & {c.id for c in a}) / k for e, a in zip(exact, approx, strict=True)
    ])), 4)


def _queries(count: int, seed: int = 99) -> list[str]:
    rng = np.random.default_rng(1)  # same vocabulary as build()
    vocab = _vocabulary(20_000, rng)
    picker = np.random.default_rng(seed)
    top = vocab[:5000]  # query words common enough to hit postings
    return [" ".join(picker.choice(top, size=int(picker.integers(3, 6)))) for _ in range(count)]


def measure(
    size: int, queries: list[str], workdir: Path, embedder: RandomEmbedder, k: int = 10
) -> dict[str, Any]:
    """Latency per mode at one store size."""
    path = workdir / f"synthetic-{embedder.name}-{size}.db"
    store, build_seconds = build(path, size, embedder)
    result: dict[str, Any] = {"chunks": store.count(), "build_seconds": round(build_seconds, 1)}
    started = time.perf_counter()
    index = store._index("")
    result["matrix_load_seconds"] = round(time.perf_counter() - started, 3)
    embedder = store.embedder
    matrix = index.matrix

    def floor(query: str) -> np.ndarray:
        with single_thread_blas():
            scores = matrix @ embedder.embed_query(query)
        top = np.argpartition(-scores, k)[:k]
        return top[np.argsort(-scores[top])]

    ann_store = EmbeddedStore(path, embedder, ann=True, ann_min_rows=1000)
    started = time.perf_counter()
    ann_store._index("")
    result["ann_build_seconds"] = round(time.perf_counter() - started, 2)
    latency, found = _timed({
        "numpy_floor": floor,
        "bm25": lambda q: store.search(q, k=k, mode="bm25"),
        "vector": lambda q: store.search(q, k=k, mode="vector"),
        "hybrid": lambda q: store.search(q, k=k, mode="hybrid"),
        "vector_ann": lambda q: ann_store.search(q, k=k, mode="vector"),
    }, queries)
    result.update(latency)
    result["bm25_mean_hits"] = round(float(np.mean([len(r) for r in found["bm25"]])), 2)
    result["ann_recall@10"] = _recall(found["vector"], found["vector_ann"], k)
    store.close()
    ann_store.close()
    return result


def measure_pydocs(path: Path, count: int) -> dict[str, Any]:
    """MiniLM vectors: model query time, store latency and ANN recall on the python-docs store."""
    from ragloom.core.embedders import LocalEmbedder
    from ragloom.tools.evaluation import load_questions

    questions = [q.question for q in load_questions(
        Path(__file__).resolve().parents[2] / "shared/datasets/python-docs")][:count]
    embedder = LocalEmbedder()
    vectors = {q: embedder.embed_query(q) for q in questions[:1]}
    embed_ms = []
    for q in questions:
        started = time.perf_counter()
        vectors[q] = embedder.embed_query(q)
        embed_ms.append(time.perf_counter() - started)

    class Cached:
        name, dimensions = embedder.name, embedder.dimensions

        def embed_query(self, text: str) -> np.ndarray:
            return vectors[text]

        def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
            return np.stack([vectors[t] for t in texts])

    result: dict[str, Any] = {"model_query_embed": _percentiles(embed_ms)}
    exact = EmbeddedStore(path, Cached())  # type: ignore[arg-type]
    result["chunks"] = exact.count()
    ann = EmbeddedStore(path, Cached(), ann=True, ann_min_rows=1000)  # type: ignore[arg-type]
    matrix = exact._index("").matrix

    def floor(query: str) -> np.ndarray:
        with single_thread_blas():
            scores = matrix @ vectors[query]
        top = np.argpartition(-scores, 10)[:10]
        return top[np.argsort(-scores[top])]

    latency, found = _timed({
        "numpy_floor": floor,
        "bm25": lambda q: exact.search(q, k=10, mode="bm25"),
        "vector": lambda q: exact.search(q, k=10, mode="vector"),
        "hybrid": lambda q: exact.search(q, k=10, mode="hybrid"),
        "vector_ann": lambda q: ann.search(q, k=10, mode="vector"),
    }, questions)
    result.update(latency)
    result["ann_recall@10"] = _recall(found["vector"], found["vector_ann"], 10)
    exact.close()
    ann.close()
    return result


class _NamedOnly:
    """Opens a store for reading its vectors without loading its model."""

    dimensions = 384

    def __init__(self, name: str) -> None:
        self.name = name


def main() -> None:
    configure_logging("WARNING")  # logs to stderr; stdout carries only the JSON
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "qbench")
    parser.add_argument("--pydocs", type=Path, help="an ingested python-docs store (MiniLM)")
    parser.add_argument("--vectors", choices=["random", "perturbed"], default="random",
                        help="perturbed: noisy copies of the --pydocs store's MiniLM vectors")
    parser.add_argument("--skip-pydocs-latency", action="store_true")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    queries = _queries(args.queries)
    embedder = RandomEmbedder()
    if args.vectors == "perturbed":
        if not args.pydocs:
            parser.error("--vectors perturbed needs --pydocs")
        base = EmbeddedStore(args.pydocs, _NamedOnly("all-MiniLM-L6-v2"))  # type: ignore[arg-type]
        embedder = PerturbedEmbedder(np.array(base._index("").matrix))
        base.close()
    report: dict[str, Any] = {"queries": len(queries), "k": 10, "embedder": embedder.name,
                              "cpu_count": os.cpu_count(), "sizes": {}}
    for size in args.sizes:
        report["sizes"][str(size)] = measure(size, queries, args.workdir, embedder)
        print(size, json.dumps(report["sizes"][str(size)]), file=sys.stderr, flush=True)
    if args.pydocs and not args.skip_pydocs_latency:
        report["pydocs"] = measure_pydocs(args.pydocs, min(args.queries, 176))
    report["loadavg_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
