"""`ragloom eval`: retrieval, answer and summary quality on a dataset, as JSON and tables.

`--min METRIC=VALUE` (repeatable; dotted paths into the JSON, e.g.
`retrieval.modes.hybrid.ndcg@10=0.6` or `answers.citation_hit_rate=0.4`) exits non-zero when a
figure is below its minimum, so the command works as a CI quality gate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
eval_app = typer.Typer(help="Measure quality on a dataset (corpus/ + questions.jsonl).")

Dataset = Annotated[
    Path, typer.Option("--dataset", exists=True, file_okay=False, help="corpus/ + questions.jsonl")
]
Store = Annotated[
    Path | None,
    typer.Option("--store", help="Use this store file (default: one per dataset, reused)."),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON only.")]
Minimum = Annotated[
    list[str] | None, typer.Option("--min", help="Quality gate METRIC=VALUE (repeatable).")
]
Limit = Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N items.")]
Modes = Annotated[str, typer.Option("--modes", help="Retrieval modes, comma-separated.")]
Alpha = Annotated[float | None, typer.Option("--alpha", min=0.0, max=1.0, help="Hybrid alpha.")]


def _run(
    parts: list[str], dataset: Path, *, store_path: Path | None, limit: int | None,
    as_json: bool, modes: str = "bm25,vector,hybrid", alpha: float | None = None,
) -> dict[str, Any]:
    from ragloom.evaluation import dataset_store, evaluate_answers, evaluate_summaries
    from ragloom.runtime import setup

    settings = setup()
    if alpha is not None:
        settings.retrieval.alpha = alpha
    figures: dict[str, Any] = {"dataset": str(dataset)}
    if "summaries" in parts:
        figures["summaries"] = evaluate_summaries(dataset, settings, limit=limit)
    if not {"retrieval", "answers"} & set(parts):
        return figures
    store = dataset_store(dataset, settings, path=store_path, progress=not as_json)
    try:
        if "retrieval" in parts:
            from ragloom.tools.evaluation import evaluate_retrieval

            figures["retrieval"] = evaluate_retrieval(
                dataset, store, [m.strip() for m in modes.split(",")],  # type: ignore[misc]
                alpha=settings.retrieval.alpha, limit=limit,
            )
        if "answers" in parts:
            figures["answers"] = evaluate_answers(
                dataset, store, settings, limit=limit, progress=not as_json
            )
    finally:
        store.close()
    return figures


def _report(figures: dict[str, Any], as_json: bool, minimums: list[str] | None) -> None:
    from ragloom.evaluation import check_minimums

    if as_json:
        print(json.dumps(figures, indent=2))
    else:
        _tables(figures)
    failures = check_minimums(figures, minimums or [])
    for failure in failures:
        console.print(f"[red]below minimum:[/red] {escape(str(failure))}")
    if failures:
        raise typer.Exit(code=1)


def _tables(figures: dict[str, Any]) -> None:
    retrieval = figures.get("retrieval")
    if retrieval:
        table = Table(title=f"Retrieval ({retrieval['questions']} questions, "
                            f"{retrieval['chunks']} chunks, alpha {retrieval['alpha']})")
        metrics = ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10")
        table.add_column("mode")
        for metric in metrics:
            table.add_column(metric, justify="right")
        for mode, values in retrieval["modes"].items():
            table.add_row(mode, *(f"{values[m]:.3f}" for m in metrics))
        console.print(table)
    for section in ("answers", "summaries"):
        if section in figures:
            table = Table(title=section.capitalize())
            table.add_column("figure")
            table.add_column("value", justify="right")
            for key, value in _flat(figures[section]):
                table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
            console.print(table)


def _flat(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            rows += _flat(value, f"{prefix}{key}.")
        elif not isinstance(value, list):
            rows.append((f"{prefix}{key}", value))
    return rows


@eval_app.command("retrieval")
def eval_retrieval(
    dataset: Dataset, store: Store = None, modes: Modes = "bm25,vector,hybrid",
    alpha: Alpha = None, as_json: Json = False, minimum: Minimum = None, limit: Limit = None,
) -> None:
    """Recall@1/5/10, MRR and nDCG@10 for each search mode."""
    figures = _run(["retrieval"], dataset, store_path=store, limit=limit, as_json=as_json,
                   modes=modes, alpha=alpha)
    _report(figures, as_json, minimum)


@eval_app.command("answers")
def eval_answers(
    dataset: Dataset, store: Store = None, as_json: Json = False, minimum: Minimum = None,
    limit: Limit = None,
) -> None:
    """Answer token-F1 against the reference answers, and how often the gold file is cited."""
    figures = _run(["answers"], dataset, store_path=store, limit=limit, as_json=as_json)
    _report(figures, as_json, minimum)


@eval_app.command("summaries")
def eval_summaries(
    dataset: Dataset, as_json: Json = False, minimum: Minimum = None, limit: Limit = None,
) -> None:
    """ROUGE-1/2/L of summaries of corpus/library pages against their lead paragraph."""
    figures = _run(["summaries"], dataset, store_path=None, limit=limit, as_json=as_json)
    _report(figures, as_json, minimum)


@eval_app.command("all")
def eval_all(
    dataset: Dataset, store: Store = None, as_json: Json = False, minimum: Minimum = None,
    limit: Limit = None,
) -> None:
    """Retrieval, answers and summaries in one run."""
    parts = ["retrieval", "answers", "summaries"]
    figures = _run(parts, dataset, store_path=store, limit=limit, as_json=as_json)
    _report(figures, as_json, minimum)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
