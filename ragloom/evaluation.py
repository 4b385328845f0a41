"""Quality evaluation over a dataset directory shaped like shared/datasets/python-docs:
`corpus/` (documents) and `questions.jsonl` (`id`, `question`, `answer`, `gold`).

Retrieval figures come from `tools.evaluation`; answer figures run the assistant graph on every
question (token-F1 against the reference answer, citation hit = the gold file is cited);
summary figures run the summarizer on documents whose first paragraph serves as reference.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.settings import Settings


def load_questions(dataset_dir: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The dataset's questions, in file order."""
    path = Path(dataset_dir) / "questions.jsonl"
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return lines[:limit] if limit else lines


def dataset_store(dataset_dir: Path, settings: Settings, *, progress: bool = True) -> Any:
    """A store holding the dataset's corpus, kept next to the configured store and reused
    (ingestion skips unchanged files)."""
    from core.embedders import build_embedder
    from tools.ingest.pipeline import ingest_paths
    from tools.stores import build_store

    embedder = build_embedder(settings)
    name = Path(dataset_dir).resolve().name
    path = settings.store.path.parent / "eval" / f"{name}-{embedder.name}.db"
    store_settings = settings.model_copy(
        update={"store": settings.store.model_copy(update={"path": path, "kind": "embedded"})}
    )
    store = build_store(store_settings, embedder)
    ingest_paths(
        [Path(dataset_dir) / "corpus"],
        store,
        chunk_tokens=settings.retrieval.chunk_tokens,
        overlap=settings.retrieval.chunk_overlap,
        progress=progress,
    )
    return store


def evaluate_answers(
    dataset_dir: Path,
    store: Any,
    settings: Settings,
    *,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the assistant on each question: token-F1 vs the reference, gold-file citation rate."""
    from rich.progress import Progress

    from graphs.assistant import build_assistant
    from prompts.metrics import citation_hit, token_f1

    graph = build_assistant(settings, store=store, checkpointer=False, summarizer=False)
    questions = load_questions(dataset_dir, limit)
    f1s: list[float] = []
    hits: list[float] = []
    cited: list[float] = []
    engine = ""
    started = time.perf_counter()
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("answers", total=len(questions))
        for item in questions:
            result = graph.invoke({"question": item["question"]})
            engine = result.get("engine", engine)
            sources = [c["source"] for c in result.get("citations", [])]
            f1s.append(token_f1(result.get("answer", ""), item["answer"]))
            hits.append(citation_hit(sources, item["gold"]))
            cited.append(1.0 if sources else 0.0)
            bar.advance(task)
    count = len(questions) or 1
    return {
        "questions": len(questions),
        "engine": engine,
        "token_f1": round(sum(f1s) / count, 4),
        "citation_hit_rate": round(sum(hits) / count, 4),
        "answered_with_citations": round(sum(cited) / count, 4),
        "seconds": round(time.perf_counter() - started, 2),
    }


def check_minimums(figures: dict[str, Any], minimums: Sequence[str]) -> list[str]:
    """Failures of `METRIC=VALUE` gates; METRIC is a dotted path into `figures`."""
    failures = []
    for gate in minimums:
        name, _, wanted = gate.partition("=")
        value: Any = figures
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            failures.append(f"{name}: no such figure")
        elif float(value) < float(wanted):
            failures.append(f"{name}: {value} < {wanted}")
    return failures
