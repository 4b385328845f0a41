"""`ragloom summarize PATH...`: a structured summary of files and folders of any length.

The same entry as `python examples/doc_summarizer.py`: both call `run_summarize`. Progress over
chunks goes to stderr (a rich progress bar); the summary (or `--json`) goes to stdout.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err = Console(stderr=True)

OUTPUT_KEYS = (
    "summary", "strategy", "chunks", "llm_calls", "tokens", "seconds", "engine", "levels",
    "sources", "errors",
)  # fmt: skip


async def _stream(graph: Any, payload: Any, config: dict[str, Any], show: bool) -> dict:
    """Run the graph, advancing a progress bar per finished map task; return the output."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    result: dict[str, Any] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=err, disable=not show, transient=False) as progress:
        task = progress.add_task("loading", total=None)
        async for update in graph.astream(payload, config, stream_mode="updates"):
            for node, values in update.items():
                values = values or {}
                result.update({k: v for k, v in values.items() if k in OUTPUT_KEYS})
                if node == "split":
                    progress.update(task, description="summarizing chunks", total=values["chunks"])
                elif node == "plan":
                    progress.update(task, description=f"summarizing ({values['strategy']})")
                elif node == "map":
                    progress.advance(task)
                elif node == "collapse":
                    progress.update(task, description="collapsing partial summaries")
                elif node == "reduce":
                    progress.update(task, description="combined", completed=result.get("chunks"))
    return result


def summarize_paths(
    paths: list[str],
    *,
    length: str = "medium",
    settings: Any = None,
    token_budget: int | None = None,
    thread: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Summarize files/folders with `ragloom.graphs.build_summarizer`; with `thread`, the run is
    checkpointed (settings' checkpointer) and a failed run resumes where it stopped."""
    from ragloom.graphs.summarizer import build_summarizer

    checkpointer = None
    if thread:
        from ragloom.graphs.checkpointers import build_checkpointer

        checkpointer = build_checkpointer(settings.checkpointer)
    graph = build_summarizer(settings, token_budget=token_budget, checkpointer=checkpointer)
    config: dict[str, Any] = {"configurable": {"thread_id": thread or f"sum-{uuid.uuid4().hex}"}}
    payload: Any = {"paths": [str(p) for p in paths], "length": length}
    if thread and _unfinished(graph, config):
        payload = None  # resume: only the unfinished tasks run
    return asyncio.run(_stream(graph, payload, config, progress))


def _unfinished(graph: Any, config: dict[str, Any]) -> bool:
    snapshot = graph.get_state(config)
    return bool(snapshot.next)


def run_summarize(
    paths: list[str],
    *,
    length: str = "medium",
    out: Path | None = None,
    as_json: bool = False,
    token_budget: int | None = None,
    thread: str | None = None,
) -> int:
    """CLI body shared by `ragloom summarize` and examples/doc_summarizer.py; returns the exit
    code."""
    from ragloom.core.errors import RagloomError
    from ragloom.runtime import setup

    if length not in ("short", "medium", "long"):
        err.print(f"[red]--length must be short, medium or long, not {escape(repr(length))}[/red]")
        return 2
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        err.print(f"[red]no such file or folder: {escape(', '.join(missing))}[/red]")
        return 2
    settings = setup()
    try:
        result = summarize_paths(
            paths, length=length, settings=settings, token_budget=token_budget, thread=thread,
            progress=not as_json,
        )  # fmt: skip
    except RagloomError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        return 1
    for problem in result.get("errors") or []:
        skipped = escape(f"{problem['source']}: {problem['error']}")
        err.print(f"[yellow]skipped {skipped}[/yellow]")
    text = json.dumps(result, indent=2) if as_json else result.get("summary", "")
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
        err.print(f"[dim]written to {escape(str(out))}[/dim]")
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    if not as_json:
        err.print(
            f"[dim]{result.get('strategy')} · {result.get('chunks')} chunks · "
            f"{result.get('llm_calls')} LLM calls · {result.get('seconds')} s · "
            f"engine: {result.get('engine')}[/dim]"
        )
    return 0 if result.get("chunks") else 1


def summarize(
    paths: list[Path] = typer.Argument(..., help="Files and/or folders to summarize."),
    length: str = typer.Option("medium", "--length", help="short, medium or long."),
    out: Path = typer.Option(None, "--out", help="Also write the summary to this file."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable result."),
    budget: int = typer.Option(None, "--budget", help="Input tokens one model call may take."),
    thread: str = typer.Option(
        None, "--thread", help="Checkpoint the run under this id; after a failure or a kill, rerun "
        "with the same id to resume (finished chunks are not summarized again)."
    ),
) -> None:
    """Summarize documents of any length: overview plus key points per section."""
    code = run_summarize(
        [str(p) for p in paths], length=length, out=out, as_json=as_json, token_budget=budget,
        thread=thread,
    )  # fmt: skip
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add `ragloom summarize` to the CLI."""
    app.command()(summarize)
