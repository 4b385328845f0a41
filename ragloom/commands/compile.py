"""`ragloom compile MODULE` optimizes one prompt module with DSPy and saves a versioned artefact;
`ragloom prompts list` shows the artefacts and which ones the graphs would load.

    ragloom compile answerer --trainset train.jsonl --devset dev.jsonl --optimizer bootstrap
    ragloom compile answerer --trainset ../shared/datasets/python-docs --limit 40 --dry-run
    ragloom prompts list
"""

from __future__ import annotations

import hashlib
import json
import sys
from contextlib import ExitStack, redirect_stdout
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
prompts_app = typer.Typer(help="Compiled prompt artefacts.", no_args_is_help=True)

OPTIMIZER_HELP = "bootstrap | random-search | mipro | gepa"


def _mapping(pairs: list[str] | None) -> dict[str, str]:
    mapping = {}
    for pair in pairs or []:
        field, sep, key = pair.partition("=")
        if not sep or not field or not key:
            raise typer.BadParameter(f"--map takes FIELD=KEY, got {pair!r}")
        mapping[field.strip()] = key.strip()
    return mapping


def _load_sets(
    module: str,
    trainset: Path,
    devset: Path | None,
    settings: Any,
    stack: ExitStack,
    *,
    mapping: dict[str, str],
    k: int,
    limit: int | None,
    progress: bool,
) -> tuple[list[Any], list[Any] | None]:
    from ragloom.prompts.datasets import load_dataset

    retrieve = None
    options: dict[str, Any] = {}
    if trainset.is_dir() or (devset is not None and devset.is_dir()):
        source = trainset if trainset.is_dir() else devset
        retrieve, corpus_key = _retriever(source, settings, stack, k, progress)
        options = {
            "k": k,
            "cache_dir": settings.store.path.parent / "compile-cache",
            "retriever_key": f"{settings.embedder.kind}:{settings.retrieval.mode}:{corpus_key}",
            "limit": limit,
        }

    def load(path: Path) -> list[Any]:
        kw = options if path.is_dir() else {}
        return load_dataset(path, module, retrieve=retrieve, mapping=mapping, **kw)

    train = load(trainset)
    if limit is not None:
        train = train[:limit]
    return train, (load(devset) if devset is not None else None)


def _retriever(
    dataset: Path | None, settings: Any, stack: ExitStack, k: int, progress: bool
) -> tuple[Any, str]:
    from ragloom.evaluation import dataset_store

    store = dataset_store(Path(str(dataset)), settings, progress=progress)
    stack.callback(store.close)
    mode, alpha = settings.retrieval.mode, settings.retrieval.alpha
    # The retrieval cache must change when the corpus does: key it by the sources' hashes.
    corpus = json.dumps(sorted(store.sources().items()))
    corpus_key = hashlib.sha256(corpus.encode("utf-8")).hexdigest()[:12]
    return (lambda question: store.search(question, k=k, mode=mode, alpha=alpha)), corpus_key


def _print_estimate(estimate: Any, model: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"dry_run": True, "model": model, **estimate.to_dict()}, indent=2))
        return
    table = Table(title="Estimated LM use" + (" (approximate)" if estimate.approximate else ""))
    table.add_column("stage")
    table.add_column("calls", justify="right")
    for stage, calls in estimate.stages.items():
        table.add_row(stage, str(calls))
    table.add_row("[bold]total[/bold]", f"[bold]{estimate.calls}[/bold]")
    table.add_row("worst case", str(estimate.calls_max))
    table.add_row("tokens in / out", f"{estimate.tokens_in:,} / {estimate.tokens_out:,}")
    cost = "unknown price" if estimate.cost_usd is None else f"${estimate.cost_usd:.4f}"
    table.add_row(escape(f"cost ({model})"), cost)
    console.print(table)


def _lm(settings: Any) -> Any:
    """The DSPy LM the compile run calls, built by the wiring module like the graphs' own."""
    from ragloom.core.errors import ConfigError
    from ragloom.graphs.wiring import Wiring

    if settings.resolved_engine != "openai":
        raise ConfigError(
            "compiling needs a model",
            setting="llm.base_url / llm.api_key",
            fix="set RAGLOOM_LLM__BASE_URL (any OpenAI-compatible server) or OPENAI_API_KEY",
        )
    return Wiring(settings).dspy_lm


def _print_report(report: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    table = Table(title=escape(
        f"Compiled {report.module} ({report.optimizer}, metric {report.metric})"
    ))
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in ("score_before", "score_after", "calls", "trainset_size", "devset_size"):
        value = getattr(report, key)
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    table.add_row("budget_exhausted", str(report.budget_exhausted))
    table.add_row(
        "artefact", escape(str(report.artefact.path)) if report.artefact else "(not saved)"
    )
    console.print(table)
    if report.note:
        console.print(f"[yellow]{escape(str(report.note))}[/yellow]")


def compile_command(
    module: str = typer.Argument(
        ..., help="answerer, rewriter, grader, router, map/reduce_summarizer"
    ),
    trainset: Path = typer.Option(
        ..., "--trainset", exists=True, help="JSONL file or question dir."
    ),
    devset: Path | None = typer.Option(None, "--devset", exists=True, help="Default: split train."),
    optimizer: str = typer.Option("bootstrap", "--optimizer", help=OPTIMIZER_HELP),
    metric: str | None = typer.Option(None, "--metric", help="Default depends on the module."),
    budget_calls: int | None = typer.Option(None, "--budget-calls", min=1, help="Hard LM cap."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the estimate and stop."),
    out: Path | None = typer.Option(None, "--out", help="Artefact dir (default: settings)."),
    mapping: list[str] = typer.Option(None, "--map", help="FIELD=KEY for JSONL (repeatable)."),
    k: int = typer.Option(4, "--k", min=1, help="Chunks per question for question dirs."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Use the first N examples."),
    max_demos: int = typer.Option(3, "--max-demos", min=0, help="Demos per predictor."),
    candidates: int = typer.Option(4, "--candidates", min=1, help="random-search/mipro size."),
    save_ties: bool = typer.Option(False, "--save-ties", help="Save even without a dev gain."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Optimize one prompt module with a DSPy optimizer and save the artefact."""
    from ragloom.core.errors import RagloomError
    from ragloom.prompts.compile import OPTIMIZERS, CompileOptions, estimate_calls
    from ragloom.prompts.datasets import split
    from ragloom.runtime import setup

    if optimizer not in OPTIMIZERS:
        raise typer.BadParameter(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
    settings = setup()
    options = CompileOptions(
        optimizer=optimizer,  # type: ignore[arg-type]
        metric=metric,
        budget_calls=budget_calls,
        max_bootstrapped_demos=max_demos,
        max_labeled_demos=max_demos,
        num_candidates=candidates,
        save_ties=save_ties,
    )
    try:
        with ExitStack() as stack:
            train, dev = _load_sets(
                module,
                trainset,
                devset,
                settings,
                stack,
                mapping=_mapping(mapping),
                k=k,
                limit=limit,
                progress=not as_json,
            )
            if dev is None:
                train, dev = split(train, options.dev_fraction)
            estimate = estimate_calls(module, train, dev, options, model=settings.llm.model)
            if dry_run:
                _print_estimate(estimate, settings.llm.model, as_json)
                return
            report = _compile(module, settings, train, dev, options, out, estimate, as_json)
    except (RagloomError, KeyError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(code=2) from exc
    _print_report(report, as_json)


def _compile(
    module: str,
    settings: Any,
    train: list[Any],
    dev: list[Any],
    options: Any,
    out: Path | None,
    estimate: Any,
    as_json: bool,
) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ragloom.prompts.compile import compile_module

    lm = _lm(settings)
    from ragloom.prompts.registry import load_judges

    judges = load_judges(settings)
    total = options.budget_calls or estimate.calls
    columns = (TextColumn("LM calls"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, disable=as_json, transient=True) as progress:
        task = progress.add_task("compile", total=min(total, estimate.calls_max) or None)

        def on_call(calls: int) -> None:
            if calls > (progress.tasks[0].total or 0):
                progress.update(task, total=calls)
            progress.update(task, completed=calls)

        # DSPy's optimizers print progress lines: keep stdout for our report (and --json).
        with redirect_stdout(sys.stderr):
            return compile_module(
                module,
                lm,
                train,
                dev,
                options=options,
                out_dir=out or settings.prompts.compiled_dir,
                model=settings.llm.model,
                on_call=on_call,
                judges=judges,
            )


@prompts_app.command("list")
def list_prompts(
    module: str | None = typer.Option(None, "--module", help="Only this module."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Compiled artefacts, newest first; `loaded` marks the one each module would use."""
    from ragloom.prompts.registry import PromptRegistry
    from ragloom.runtime import setup

    registry = PromptRegistry.from_settings(setup())
    artefacts = registry.artefacts(module)
    chosen = {}
    for name in sorted({a.module for a in artefacts}):
        try:
            picked = registry.resolve(name)
        except Exception:  # a missing pin shows as nothing loaded
            picked = None
        chosen[name] = picked.hash if picked else None
    if as_json:
        rows = [{**a.to_dict(), "loaded": chosen.get(a.module) == a.hash} for a in artefacts]
        print(json.dumps({"compiled_dir": str(registry.compiled_dir), "artefacts": rows}, indent=2))
        return
    _artefact_table(artefacts, chosen, registry.compiled_dir)


def _artefact_table(artefacts: list[Any], chosen: dict[str, Any], where: Path) -> None:
    from rich import box

    if not artefacts:
        console.print(f"no compiled artefacts under {escape(str(where))}")
        return
    table = Table(title="Compiled prompts", caption=escape(str(where)), box=box.SIMPLE_HEAD)
    table.add_column("module", min_width=8)
    table.add_column("hash", min_width=12)
    table.add_column("status")
    table.add_column("used")
    table.add_column("optimizer / metric")
    table.add_column("dev score")
    table.add_column("model / created")
    for a in artefacts:
        meta = a.meta
        table.add_row(
            escape(a.module),
            escape(a.hash),
            "ok" if a.status == "ok" else f"[red]{escape(a.status)}[/red]",
            "yes" if chosen.get(a.module) == a.hash else "",
            escape(f"{meta.get('optimizer', '')} / {meta.get('metric', '')}"),
            f"{_score(a.score_before)} → {_score(a.score_after)}",
            escape(f"{meta.get('model', '')} {a.created[:10]}"),
        )
    console.print(table)


def _score(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def register(app: typer.Typer) -> None:
    app.command("compile")(compile_command)
    app.add_typer(prompts_app, name="prompts")
