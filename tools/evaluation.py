"""Retrieval evaluation: Recall@1/5/10, MRR and nDCG@10 per search mode.

A dataset directory holds `corpus/` and `questions.jsonl` (one JSON object per line with `question`
and `gold`, the path of the answering file relative to `corpus/`). Relevance is binary: a chunk is
relevant when its source is a gold path. Documents are ranked by their first chunk in the results
(later chunks of an already-ranked source are skipped), so the metrics are about documents.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from ragloom.core.errors import ConfigError
from ragloom.tools.stores.base import SEARCH_MODES, ChunkStore, SearchMode

log = structlog.get_logger(__name__)

CUTOFFS = (1, 5, 10)
METRICS = ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10")


@dataclass(frozen=True)
class Question:
    """One evaluation question and the sources that answer it."""

    id: str
    question: str
    gold: tuple[str, ...]
    answer: str = ""


def load_questions(dataset_dir: str | Path) -> list[Question]:
    """Questions from `dataset_dir/questions.jsonl` (`gold` may be a path or a list of paths)."""
    path = Path(dataset_dir) / "questions.jsonl"
    if not path.is_file():
        raise ConfigError(f"no questions.jsonl in {dataset_dir}", setting="--dataset",
                          fix="point at a folder holding corpus/ and questions.jsonl")
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        gold = row["gold"] if isinstance(row["gold"], list) else [row["gold"]]
        ident = str(row.get("id", number))
        questions.append(Question(ident, row["question"], tuple(gold), row.get("answer", "")))
    return questions


def dedupe_sources(sources: Iterable[str]) -> list[str]:
    """Sources in first-seen order, each once."""
    return list(dict.fromkeys(sources))


def first_relevant_rank(ranked: Sequence[str], gold: Iterable[str]) -> int | None:
    """1-based rank of the first gold source in `ranked`, or None."""
    wanted = set(gold)
    return next((i for i, source in enumerate(ranked, 1) if source in wanted), None)


def question_metrics(ranked: Sequence[str], gold: Sequence[str]) -> dict[str, float]:
    """Recall@1/5/10, MRR@10 and nDCG@10 of one ranked list of distinct sources (binary)."""
    k = 10
    wanted = set(gold)
    ranks = [i for i, source in enumerate(ranked[:k], 1) if source in wanted]
    first = ranks[0] if ranks else None
    dcg = sum(1.0 / math.log2(r + 1) for r in ranks)
    ideal = sum(1.0 / math.log2(r + 1) for r in range(1, min(len(wanted), k) + 1))
    result = {
        f"recall@{c}": len([r for r in ranks if r <= c]) / len(wanted) for c in CUTOFFS
    }
    result["mrr"] = 1.0 / first if first else 0.0
    result["ndcg@10"] = dcg / ideal if ideal else 0.0
    return result


def mean_metrics(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Average each metric over questions."""
    if not rows:
        return {name: 0.0 for name in METRICS}
    return {name: round(sum(r[name] for r in rows) / len(rows), 4) for name in rows[0]}


def evaluate_retrieval(
    dataset_dir: str | Path,
    store: ChunkStore,
    modes: Sequence[SearchMode] = SEARCH_MODES,
    k: int = 10,
    *,
    alpha: float = 0.5,
    tenant: str | None = None,
    depth: int | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Run every question through each mode; returns metrics per mode plus run facts.

    The first `k` distinct documents are scored (cutoffs 1/5/10). `depth` chunks are fetched
    per question (default `max(5 * k, 50)`) so that `k` distinct documents remain after
    de-duplicating by source.
    """
    questions = load_questions(dataset_dir)[:limit]
    depth = depth or max(5 * k, 50)
    known = set(store.sources(tenant=tenant))
    missing_gold = sorted({g for q in questions for g in q.gold} - known)
    if missing_gold:
        log.warning("eval.gold_missing", count=len(missing_gold), first=missing_gold[:3])
    result: dict[str, Any] = {
        "dataset": str(dataset_dir), "questions": len(questions), "k": k, "alpha": alpha,
        "depth": depth, "chunks": store.count(tenant=tenant), "gold_missing": len(missing_gold),
        "modes": {},
    }
    for mode in modes:
        if mode not in SEARCH_MODES:
            raise ConfigError(f"unknown mode {mode!r}", setting="--modes",
                              fix="use bm25, vector, hybrid")
        started = time.perf_counter()
        rows = []
        for question in questions:
            chunks = store.search(question.question, k=depth, mode=mode, alpha=alpha,
                                  tenant=tenant)
            ranked = dedupe_sources(c.source for c in chunks)
            rows.append(question_metrics(ranked[:k], question.gold))
        metrics = mean_metrics(rows)
        metrics["seconds_per_query"] = round((time.perf_counter() - started) / max(1, len(rows)), 4)
        result["modes"][mode] = metrics
    return result


def render_table(result: dict[str, Any]) -> str:
    """A Markdown table of the metrics per mode."""
    header = "| mode | " + " | ".join(METRICS) + " |"
    lines = [header, "|" + "---|" * (len(METRICS) + 1)]
    for mode, metrics in result["modes"].items():
        lines.append(f"| {mode} | " + " | ".join(f"{metrics[m]:.3f}" for m in METRICS) + " |")
    return "\n".join(lines)
