"""Retrieval ablation on a dataset (python-docs): chunking x context x BM25 x depth x fusion.

    python benchmarks/retrieval_bench.py --dataset ../shared/datasets/python-docs \\
        --work /tmp/ragloom-bench [--subset 8] [--chunks 200:32,128:24] [--out result.json]

One embedded store per chunking configuration (built once, cached under --work; vectors cached
by text in --work/embeddings.db, so re-runs embed nothing), with the ONNX int8 local embedder.
Each search configuration is then scored on the dataset's questions split in two halves: `tune`
(even line numbers), on which the defaults are chosen, and `test` (odd), which is reported. Prints
one JSON object: per store and search configuration, nDCG@10 / R@k / MRR per half.

`--subset N` keeps every gold file plus every N-th other file (fewer distractors than the full
corpus: figures are higher than on the full corpus and only comparable within one run).
The `naive` store is the baseline script's recipe (raw text, 220-word windows every 180 words,
no context) in the same store and embedder, so the comparison is like for like. A `:prose`
store (`400:48:prose`) embeds each chunk's context line + `core.text.prose_view` of its text
(markup, directives and code blocks stripped) instead of the raw text; BM25 is unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ragloom.core.documents import Chunk, make_chunk_id
from ragloom.core.embedders import LocalEmbedder, OnnxEmbedder, embed_in_windows
from ragloom.core.text import prose_view
from ragloom.tools.evaluation import (
    Question,
    dedupe_sources,
    load_questions,
    mean_metrics,
    question_metrics,
)
from ragloom.tools.ingest.pipeline import ingest_paths
from ragloom.tools.stores import embedded as embedded_module
from ragloom.tools.stores.base import SearchMode, SearchOptions, chunk_context
from ragloom.tools.stores.embedded import EmbeddedStore


class CachedEmbedder:
    """An embedder whose vectors are cached by text hash in SQLite (same name and dims).

    With `long_texts="mean"` (the local embedders' option) a text over 256 pieces is cut into
    windows here and each window is cached, so the cache never serves a truncated vector for a
    long text (every cached text then fits the model, where both modes agree)."""

    def __init__(self, inner: Any, path: Path, long_texts: str = "truncate") -> None:
        self.inner = inner
        self.long_texts = long_texts
        if hasattr(inner, "long_texts"):
            inner.long_texts = "truncate"
        self.name = inner.name
        self.dimensions = inner.dimensions
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS v (h TEXT PRIMARY KEY, b BLOB)")
        self.embedded = 0
        self.seconds = 0.0

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if self.long_texts == "mean":
            return embed_in_windows(self._embed_cached, texts, self.dimensions)
        return self._embed_cached(texts)

    def _embed_cached(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.sha1(t.encode()).hexdigest() for t in texts]
        found: dict[str, np.ndarray] = {}
        for begin in range(0, len(keys), 500):
            part = keys[begin:begin + 500]
            rows = self.db.execute(
                f"SELECT h, b FROM v WHERE h IN ({','.join('?' * len(part))})", part
            ).fetchall()
            found.update((h, np.frombuffer(b, dtype=np.float32)) for h, b in rows)
        missing = [i for i, k in enumerate(keys) if k not in found]
        if missing:
            started = time.perf_counter()
            vectors = self.inner.embed_documents([texts[i] for i in missing])
            self.seconds += time.perf_counter() - started
            self.embedded += len(missing)
            self.db.executemany("INSERT OR REPLACE INTO v VALUES (?, ?)", [
                (keys[i], np.ascontiguousarray(v, dtype=np.float32).tobytes())
                for i, v in zip(missing, vectors, strict=True)
            ])
            self.db.commit()
            for i, v in zip(missing, vectors, strict=True):
                found[keys[i]] = v
        return np.stack([found[k] for k in keys]) if keys else np.zeros((0, self.dimensions))

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


def subset_corpus(dataset: Path, work: Path, every: int) -> Path:
    """A copy of the corpus with every gold file and every `every`-th other file."""
    if every <= 1:
        return dataset / "corpus"
    target = work / f"subset{every}" / "corpus"
    if target.is_dir():
        return target
    gold = {g for q in load_questions(dataset) for g in q.gold}
    corpus = dataset / "corpus"
    others = sorted(p for p in corpus.rglob("*.rst") if str(p.relative_to(corpus)) not in gold)
    keep = [corpus / g for g in sorted(gold)] + others[::every]
    for path in keep:
        dest = target / path.relative_to(corpus)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    return target


@contextmanager
def bare_chunks() -> Iterator[None]:
    """Embed and index chunk text only (no title / heading context): the ablation's control."""
    saved = embedded_module.chunk_context, embedded_module.embed_text
    embedded_module.chunk_context = lambda chunk: ""
    embedded_module.embed_text = lambda chunk: chunk.text
    try:
        yield
    finally:
        embedded_module.chunk_context, embedded_module.embed_text = saved


def build_store(name: str, corpus: Path, work: Path, embedder: Any) -> EmbeddedStore:
    """The store for chunking configuration `name` ('naive', or
    'TOKENS:OVERLAP[:bare|:prose]')."""
    path = work / f"{corpus.parent.name}-{name.replace(':', '_')}.db"
    done = path.with_suffix(".done")
    with store_variant(name):
        store = EmbeddedStore(path, embedder)
        if done.exists():
            return store
        started = time.perf_counter()
        if name == "naive":
            for file in sorted(corpus.rglob("*.rst")):
                source = str(file.relative_to(corpus))
                words = file.read_text(errors="replace").split()
                chunks = [
                    Chunk(id=make_chunk_id(source, n, text), source=source, text=text, position=n,
                          metadata={"content_hash": "naive"})
                    for n, i in enumerate(range(0, max(len(words), 1), 180))
                    for text in [" ".join(words[i:i + 220])]
                ]
                store.replace_source(source, "naive", chunks)
        else:
            tokens, overlap = (int(x) for x in name.split(":")[:2])
            ingest_paths([corpus], store, root=corpus, chunk_tokens=tokens, overlap=overlap,
                         progress=False)
        done.write_text(json.dumps({"seconds": round(time.perf_counter() - started, 1),
                                    "chunks": store.count()}))
    return store


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def prose_embed_text(chunk: Chunk) -> str:
    """The `:prose` stores' embedded text: context line, then the chunk's prose view."""
    context = chunk_context(chunk)
    body = prose_view(chunk.text)
    return f"{context}\n\n{body}" if context else body


@contextmanager
def prose_chunks() -> Iterator[None]:
    """Embed the prose view of each chunk (BM25 still indexes the raw text and context)."""
    saved = embedded_module.embed_text
    embedded_module.embed_text = prose_embed_text
    try:
        yield
    finally:
        embedded_module.embed_text = saved


def store_variant(name: str) -> AbstractContextManager[None]:
    """What a store name's suffix changes while it is built and searched."""
    if name == "naive" or name.endswith(":bare"):
        return bare_chunks()
    return prose_chunks() if name.endswith(":prose") else _nothing()


def score(
    store: EmbeddedStore, questions: Sequence[Question], mode: SearchMode, alpha: float,
    options: SearchOptions, depth: int = 50,
) -> dict[str, dict[str, float]]:
    """Metrics per half ('tune' = even lines, 'test' = odd lines, 'all')."""
    store.options = options
    rows: dict[str, list[dict[str, float]]] = {"tune": [], "test": [], "all": []}
    for index, question in enumerate(questions):
        chunks = store.search(question.question, k=depth, mode=mode, alpha=alpha)
        row = question_metrics(dedupe_sources(c.source for c in chunks)[:10], question.gold)
        rows["tune" if index % 2 == 0 else "test"].append(row)
        rows["all"].append(row)
    return {half: mean_metrics(r) for half, r in rows.items()}


def search_grid(full: bool) -> list[tuple[SearchMode, float, SearchOptions]]:
    """The search configurations: both legs alone, then hybrid over fusion x alpha x ..."""
    grid: list[tuple[SearchMode, float, SearchOptions]] = [
        ("bm25", 0.0, SearchOptions(stopwords=False, context_weight=1.0)),
        ("bm25", 0.0, SearchOptions(stopwords=True, context_weight=1.0)),
        ("bm25", 0.0, SearchOptions(stopwords=True, context_weight=3.0)),
        ("vector", 1.0, SearchOptions()),
    ]
    alphas = (0.5, 0.6, 0.7, 0.75, 0.8, 0.9)
    fusions = ("relative", "rrf", "document")
    for fusion, alpha in itertools.product(fusions, alphas):
        grid.append(("hybrid", alpha, SearchOptions(fusion=fusion)))
    for alpha in alphas:  # the BM25 leg without stop words
        grid.append(("hybrid", alpha, SearchOptions(stopwords=True)))
    if full:
        for candidates, weight, stop in itertools.product((50, 200), (1.0, 3.0), (True, False)):
            if (candidates, weight, stop) == (200, 1.0, True):
                continue  # in the small grid
            for alpha in (0.6, 0.7, 0.8):
                grid.append(("hybrid", alpha, SearchOptions(
                    candidates=candidates, context_weight=weight, stopwords=stop)))
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ragloom-bench"))
    parser.add_argument("--subset", type=int, default=1)
    parser.add_argument("--chunks", default="naive,200:32,128:24,200:32:bare")
    parser.add_argument("--grid", choices=("small", "full"), default="full")
    parser.add_argument("--backend", choices=("onnx", "torch"), default="onnx",
                        help="local model runtime (use a separate --work per backend)")
    parser.add_argument("--long-texts", choices=("mean", "truncate"), default="truncate",
                        help="a chunk over 256 pieces: mean of its windows' vectors, or truncated "
                        "(use a separate --work per choice: stores cache their vectors)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    inner = (OnnxEmbedder(cache_dir=args.work.parent / "onnx") if args.backend == "onnx"
             else LocalEmbedder())
    embedder = CachedEmbedder(inner, args.work / f"embeddings-{args.backend}.db", args.long_texts)
    corpus = subset_corpus(args.dataset, args.work, args.subset)
    questions = load_questions(args.dataset)
    result: dict[str, Any] = {
        "dataset": str(args.dataset), "subset": args.subset, "questions": len(questions),
        "halves": "tune = even lines (defaults chosen here), test = odd lines",
        "embedder": f"{args.backend} all-MiniLM-L6-v2", "long_texts": args.long_texts,
        "stores": {},
    }
    for name in args.chunks.split(","):
        started = time.perf_counter()
        store = build_store(name, corpus, args.work, embedder)
        built = json.loads(store.path.with_suffix(".done").read_text())
        print(f"store {name}: {store.count()} chunks ({built['seconds']} s to build)",
              file=sys.stderr)
        entry: dict[str, Any] = {"chunks": store.count(), "build_seconds": built["seconds"],
                                 "runs": []}
        bare = name == "naive" or name.endswith(":bare")
        with store_variant(name):
            for mode, alpha, options in search_grid(args.grid == "full" and not bare):
                figures = score(store, questions, mode, alpha, options)
                entry["runs"].append({
                    "mode": mode, "alpha": alpha, "fusion": options.fusion,
                    "candidates": options.candidates, "stopwords": options.stopwords,
                    "context_weight": options.context_weight,
                    **{half: {m: figures[half][m] for m in ("ndcg@10", "recall@5", "mrr")}
                       for half in ("tune", "test", "all")},
                })
        entry["seconds"] = round(time.perf_counter() - started, 1)
        result["stores"][name] = entry
        store.close()
        if args.out:  # partial results survive an interrupted run
            args.out.write_text(json.dumps(result, indent=1))
    result["embedded_texts"] = embedder.embedded
    result["embedding_seconds"] = round(embedder.seconds, 1)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
