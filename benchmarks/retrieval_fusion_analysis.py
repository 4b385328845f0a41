"""Why hybrid does (not) beat the better single mode: an alpha sweep and leg complementarity (JSON).

Both legs (BM25 and vector, top 200 chunks each) are computed once per question from an ingested
store; fusion is then `ragloom.tools.stores.base.relative_score_fusion` (the store's own hybrid) at
several alphas, plus two reference fusions that the stores do not use: reciprocal rank fusion
(k=60) and relative-score fusion after collapsing each leg to its best chunk per document.
Complementarity counts the questions where one leg ranks the gold document where the other does not.

    python benchmarks/retrieval_fusion_analysis.py --store /tmp/pydocs-store/store.db \
        --dataset ../shared/datasets/python-docs
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragloom.core.embedders import LocalEmbedder
from ragloom.core.logging import configure_logging
from ragloom.tools.evaluation import dedupe_sources, load_questions, mean_metrics, question_metrics
from ragloom.tools.stores.base import relative_score_fusion
from ragloom.tools.stores.embedded import EmbeddedStore

Leg = list[tuple[str, float]]
DEPTH = 200


def main() -> None:
    configure_logging("WARNING")  # logs to stderr; stdout carries only the JSON
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    args = parser.parse_args()
    questions = load_questions(args.dataset)
    store = EmbeddedStore(args.store, LocalEmbedder())
    legs = [(store._bm25(q.question, "", DEPTH, None), store._vector(q.question, "", DEPTH, None))
            for q in questions]
    source_of: dict[str, str] = {}
    for bm25, vector in legs:
        ids = [i for i, _ in bm25 + vector if i not in source_of]
        source_of.update((c.id, c.source) for c in store.get(ids))
    store.close()

    def evaluate(fuse: Callable[[Leg, Leg], Leg]) -> tuple[dict[str, float], list[dict]]:
        rows = []
        for question, (bm25, vector) in zip(questions, legs, strict=True):
            ranked = dedupe_sources(source_of[i] for i, _ in fuse(bm25, vector))[:10]
            rows.append(question_metrics(ranked, question.gold))
        return mean_metrics(rows), rows

    def per_document(leg: Leg) -> Leg:
        best: dict[str, tuple[str, float]] = {}
        for chunk_id, score in leg:
            best.setdefault(source_of[chunk_id], (chunk_id, score))
        return list(best.values())

    def rrf(bm25: Leg, vector: Leg, k: int = 60) -> Leg:
        scores: dict[str, float] = {}
        for leg in (bm25, vector):
            for rank, (chunk_id, _) in enumerate(leg, 1):
                scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k + rank)
        return sorted(scores.items(), key=lambda item: (-item[1], item[0]))

    result: dict[str, Any] = {"questions": len(questions), "depth": DEPTH, "fusions": {}}
    bm25_metrics, bm25_rows = evaluate(lambda b, v: b)
    vector_metrics, vector_rows = evaluate(lambda b, v: v)
    result["fusions"]["bm25"] = bm25_metrics
    result["fusions"]["vector"] = vector_metrics
    for alpha in (0.3, 0.5, 0.6, 0.7, 0.8, 0.9):
        result["fusions"][f"relative_score alpha={alpha}"] = evaluate(
            lambda b, v, a=alpha: relative_score_fusion(b, v, a))[0]
        result["fusions"][f"relative_score per-document alpha={alpha}"] = evaluate(
            lambda b, v, a=alpha: relative_score_fusion(per_document(b), per_document(v), a))[0]
    result["fusions"]["rrf k=60"] = evaluate(rrf)[0]
    result["complementarity"] = {
        f"{cut}: {name}": sum(1 for b, v in zip(bm25_rows, vector_rows, strict=True) if test(b, v))
        for cut in ("recall@1", "recall@10")
        for name, test in (
            ("bm25 only", lambda b, v, c=cut: b[c] > 0 and v[c] == 0),
            ("vector only", lambda b, v, c=cut: v[c] > 0 and b[c] == 0),
            ("both", lambda b, v, c=cut: b[c] > 0 and v[c] > 0),
            ("neither", lambda b, v, c=cut: b[c] == 0 and v[c] == 0),
        )
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
