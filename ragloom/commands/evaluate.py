"""`ragloom eval`: retrieval, answer and summary quality on a dataset, as JSON and a table.

`--min METRIC=VALUE` (repeatable, dotted paths such as `retrieval.hybrid.ndcg@10`) exits
non-zero when a figure is below its minimum, so the command works as a CI quality gate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()
eval_app = typer.Typer(help="Measure quality on a dataset (corpus/ + questions.jsonl).")

DatasetOpt = typer.Option(..., "--dataset", exists=True, file_okay=False, help="Dataset folder.")
JsonOpt = typer.Option(False, "--json", help="Print JSON only.")
MinOpt = typer.Option(None, "--min", help="Quality gate METRIC=VALUE (repeatable).")
LimitOpt = typer.Option(None, "--limit", help="Evaluate only the first N questions.")


def _run(parts: list[str], dataset: Path, limit: int | None, as_json: bool) -> dict[str, Any]:
    from ragloom.evaluation import dataset_store, evaluate_answers
    from ragloom.runtime import setup

    settings = setup()
    figures: dict[str, Any] = {"dataset": str(dataset)}
    store = dataset_store(dataset, settings, progress=not as_json)
    try:
        if "retrieval" in parts:
            from tools.evaluation import evaluate_retrieval

            figures["retrieval"] = evaluate_retrieval(dataset, store, limit=limit)
        if "answers" in parts:
            figures["answers"] = evaluate_answers(
                dataset, store, settings, limit=limit, progress=not as_json
            )
        if "summaries" in parts:
            from graphs.summarizer import evaluate_summaries

            figures["summaries"] = evaluate_summaries(dataset, settings, limit=limit)
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
        console.print(f"[red]below minimum:[/red] {failure}")
    if failures:
        raise typer.Exit(code=1)


def _tables(figures: dict[str, Any]) -> None:
    retrieval = figures.get("retrieval") or {}
    modes = {m: v for m, v in retrieval.items() if isinstance(v, dict)}
    if modes:
        metrics = list(next(iter(modes.values())))
        table = Table(title="Retrieval")
        table.add_column("mode")
        for metric in metrics:
            table.add_column(metric, justify="right")
        for mode, values in modes.items():
            table.add_row(mode, *(_fmt(values.get(m)) for m in metrics))
        console.print(table)
    for section in ("answers", "summaries"):
        if section in figures:
            table = Table(title=section.capitalize())
            table.add_column("figure")
            table.add_column("value", justify="right")
            for key, value in figures[section].items():
                if not isinstance(value, (dict, list)):
                    table.add_row(key, _fmt(value))
            console.print(table)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@eval_app.command("retrieval")
def eval_retrieval(
    dataset: Path = DatasetOpt, as_json: bool = JsonOpt, minimum: list[str] = MinOpt,
    limit: int = LimitOpt,
) -> None:
    """Recall@1/5/10, MRR and nDCG@10 for bm25, vector and hybrid search."""
    _report(_run(["retrieval"], dataset, limit, as_json), as_json, minimum)


@eval_app.command("answers")
def eval_answers(
    dataset: Path = DatasetOpt, as_json: bool = JsonOpt, minimum: list[str] = MinOpt,
    limit: int = LimitOpt,
) -> None:
    """Answer token-F1 against the reference answers and the gold-file citation rate."""
    _report(_run(["answers"], dataset, limit, as_json), as_json, minimum)


@eval_app.command("all")
def eval_all(
    dataset: Path = DatasetOpt, as_json: bool = JsonOpt, minimum: list[str] = MinOpt,
    limit: int = LimitOpt,
) -> None:
    """Retrieval, answers and summaries in one run."""
    _report(_run(["retrieval", "answers", "summaries"], dataset, limit, as_json), as_json, minimum)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
