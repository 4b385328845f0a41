"""Does a reranker help after fusion? Document-level nDCG@10 / R@5 with and without it (JSON).

    python benchmarks/retrieval_rerank.py --store /tmp/ragloom-bench/python-docs-200_32.db \\
        --dataset ../shared/datasets/python-docs [--reranker semantic] [--depth 10]

For each question: the store's hybrid search (shipped defaults) fetches 50 chunks; the first
`--depth` are reranked and put back in front of the rest; documents are ranked by their first
chunk. Questions are split as in retrieval_bench.py (tune = even lines, test = odd lines).
The cross-encoder reranker needs `--cross-encoder-model` (a local model path).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ragloom.core.embedders import OnnxEmbedder
from ragloom.core.settings import load_settings
from ragloom.tools.evaluation import dedupe_sources, load_questions, mean_metrics, question_metrics
from ragloom.tools.rerank import CrossEncoderReranker, NoReranker, Reranker, SemanticReranker
from ragloom.tools.stores import search_options
from ragloom.tools.stores.embedded import EmbeddedStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--reranker", choices=("semantic", "cross-encoder"), default="semantic")
    parser.add_argument("--cross-encoder-model")
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--weight", type=float, default=0.5)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/ragloom-bench/onnx"))
    args = parser.parse_args()
    settings = load_settings()
    embedder = OnnxEmbedder(cache_dir=args.cache)
    store = EmbeddedStore(args.store, embedder, options=search_options(settings))
    rerankers: dict[str, Reranker] = {"none": NoReranker()}
    if args.reranker == "semantic":
        rerankers["semantic"] = SemanticReranker(embedder, weight=args.weight, max_sentences=8)
    else:
        rerankers["cross-encoder"] = CrossEncoderReranker(args.cross_encoder_model)
    questions = load_questions(args.dataset)[: args.limit]
    rows: dict[str, dict[str, list[dict[str, float]]]] = {
        name: {"tune": [], "test": []} for name in rerankers
    }
    seconds = dict.fromkeys(rerankers, 0.0)
    for index, question in enumerate(questions):
        half = "tune" if index % 2 == 0 else "test"
        fused = store.search(question.question, k=50, mode=settings.retrieval.mode,
                             alpha=settings.retrieval.alpha)
        for name, reranker in rerankers.items():
            started = time.perf_counter()
            head = reranker.rerank(question.question, fused[: args.depth])
            seconds[name] += time.perf_counter() - started
            ranked = dedupe_sources(c.source for c in [*head, *fused[args.depth:]])
            rows[name][half].append(question_metrics(ranked[:10], question.gold))
    result = {
        "store": str(args.store), "questions": len(questions), "depth": args.depth,
        "alpha": settings.retrieval.alpha, "fusion": settings.retrieval.fusion,
        "rerankers": {
            name: {half: {m: v for m, v in mean_metrics(r).items() if m in ("ndcg@10", "recall@5",
                                                                             "mrr")}
                   for half, r in halves.items()}
            | {"seconds_per_query": round(seconds[name] / max(1, len(questions)), 3)}
            for name, halves in rows.items()
        },
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
