"""`ragloom threads list|show|delete|prune`: the conversation threads the checkpointer keeps."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ragloom.core.errors import ConfigError

console = Console()
threads_app = typer.Typer(help="List, show, delete and prune conversation threads.")

_AGE = re.compile(r"^(\d+)\s*([dhm])$")


def parse_age(text: str) -> timedelta:
    """`30d`, `12h` or `45m` as a timedelta."""
    match = _AGE.match(text.strip().lower())
    if not match:
        raise ConfigError(f"bad age {text!r}", setting="older_than", fix="use e.g. 30d, 12h, 45m")
    amount, unit = int(match.group(1)), match.group(2)
    return {"d": timedelta(days=amount), "h": timedelta(hours=amount),
            "m": timedelta(minutes=amount)}[unit]  # fmt: skip


def thread_summaries(saver: Any) -> list[dict[str, Any]]:
    """One row per thread: id, last update (UTC ISO), messages, the last question."""
    latest: dict[str, Any] = {}
    for item in saver.list(None):
        thread_id = str(item.config["configurable"]["thread_id"])
        ts = item.checkpoint.get("ts", "")
        if thread_id not in latest or ts > latest[thread_id].checkpoint.get("ts", ""):
            latest[thread_id] = item
    rows = []
    for thread_id, item in latest.items():
        messages = item.checkpoint.get("channel_values", {}).get("messages") or []
        questions = [m for m in messages if getattr(m, "type", "") == "human"]
        rows.append({
            "thread_id": thread_id,
            "updated": item.checkpoint.get("ts", ""),
            "messages": len(messages),
            "last_question": str(questions[-1].content)[:80] if questions else "",
        })
    return sorted(rows, key=lambda r: r["updated"], reverse=True)


def _saver() -> Any:
    from ragloom.graphs.checkpointers import build_checkpointer
    from ragloom.runtime import setup

    return build_checkpointer(setup().checkpointer)


@threads_app.command("list")
def list_threads(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Threads, newest first."""
    rows = thread_summaries(_saver())
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("thread", "updated", "messages", "last question")
    for row in rows:
        table.add_row(Text(row["thread_id"]), row["updated"], str(row["messages"]),
                      Text(row["last_question"]))  # fmt: skip
    console.print(table)


@threads_app.command("show")
def show_thread(thread_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """The messages of one thread."""
    from ragloom.core.text import clean_query, printable

    thread_id = clean_query(thread_id)  # as `ask --thread` names it
    item = _saver().get_tuple({"configurable": {"thread_id": thread_id}})
    if item is None:
        raise ConfigError(f"no thread {thread_id!r}", setting="thread_id",
                          fix="see `ragloom threads list`")  # fmt: skip
    messages = item.checkpoint.get("channel_values", {}).get("messages") or []
    if as_json:
        print(json.dumps([{"type": m.type, "content": m.content} for m in messages], indent=2))
        return
    for message in messages:
        who = "you" if message.type == "human" else "ragloom"
        console.print(Text(f"{who}> ", style="bold"), Text(printable(str(message.content))))


@threads_app.command("delete")
def delete_thread(thread_id: str) -> None:
    """Delete one thread and all its checkpoints."""
    from ragloom.core.text import clean_query

    thread_id = clean_query(thread_id)
    _saver().delete_thread(thread_id)
    console.print(Text(f"deleted thread {thread_id}"))


@threads_app.command("prune")
def prune_threads(
    older_than: str = typer.Option(..., "--older-than", help="e.g. 30d, 12h, 45m"),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be deleted."),
) -> None:
    """Delete threads not updated for `--older-than`."""
    cutoff = datetime.now(UTC) - parse_age(older_than)
    saver = _saver()
    old = [r for r in thread_summaries(saver) if datetime.fromisoformat(r["updated"]) < cutoff]
    for row in old:
        if not dry_run:
            saver.delete_thread(row["thread_id"])
    verb = "would delete" if dry_run else "deleted"
    console.print(Text(f"{verb} {len(old)} thread(s) older than {older_than}"))


def register(app: typer.Typer) -> None:
    app.add_typer(threads_app, name="threads")
