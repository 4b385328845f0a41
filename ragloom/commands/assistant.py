"""`ragloom ask` and `ragloom chat`: questions over the ingested documents, with citations."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

import typer
from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import RunnableConfig
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from ragloom.core.errors import InvalidQueryError

console = Console()
err = Console(stderr=True)


def _config(thread: str | None) -> RunnableConfig:
    from ragloom.core.text import clean_query

    thread = clean_query(thread) if thread else thread  # printable, storable UTF-8
    return {"configurable": {"thread_id": thread or f"cli-{uuid.uuid4().hex[:8]}"}}


def _question(text: str) -> str:
    """The question without control characters or bytes that are not UTF-8; an empty one is
    a one-line `invalid_query` error (exit status 1)."""
    from ragloom.core.text import clean_query

    question = clean_query(text)
    if not question:
        error = InvalidQueryError("the question is empty; ask about your documents")
        err.print(Text.assemble(("error:", "red"), " ", str(error)), soft_wrap=True)
        raise typer.Exit(1)
    return question


def _print_answer(result: dict[str, Any], *, streamed: str = "") -> None:
    """The answer (unless the same text was just streamed), caveat, sources and engine; text
    from documents or the model is never console markup nor terminal escape sequences."""
    from ragloom.core.text import printable

    if streamed.strip() != str(result.get("answer", "")).strip():
        console.print(printable(str(result.get("answer", ""))), markup=False, highlight=False)
    if result.get("caveat"):
        console.print(f"[yellow]Note:[/yellow] {escape(printable(str(result['caveat'])))}")
    citations = result.get("citations") or []
    if citations:
        console.print("\n[bold]Sources[/bold]")
        for i, citation in enumerate(citations, 1):
            heading = " > ".join(citation.get("heading_path") or [])
            where = printable(f"{citation['source']}" + (f" § {heading}" if heading else ""))
            console.print(
                f"  \\[{i}] {escape(where)}  [dim]({escape(str(citation['chunk_id']))})[/dim]"
            )
    console.print(f"[dim]engine: {escape(str(result.get('engine')))}[/dim]")


def stream_answer(graph: Any, question: str, config: RunnableConfig) -> tuple[dict[str, Any], str]:
    """Stream node progress (stderr) and the answer's tokens (stdout); return the final event
    and the streamed text."""
    from ragloom.core.text import printable

    final: dict[str, Any] = {}
    streamed = ""
    for mode, chunk in graph.stream(
        {"question": question}, config, stream_mode=["updates", "messages", "custom"]
    ):
        if mode == "updates":
            for node in chunk:
                err.print(f"[dim]· {escape(str(node))}[/dim]")
        elif mode == "messages":
            message, _meta = chunk
            if isinstance(message, AIMessageChunk) and message.content:  # the answer's tokens
                sys.stdout.write(printable(str(message.content)))
                sys.stdout.flush()
                streamed += str(message.content)
        elif mode == "custom" and chunk.get("event") == "final":
            final = chunk
    if streamed:
        sys.stdout.write("\n")
    return final, streamed


def ask(
    question: str = typer.Argument(..., help="Your question."),
    thread: str = typer.Option(None, "--thread", help="Thread id: keeps the conversation."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    stream: bool = typer.Option(False, "--stream", help="Stream progress and tokens."),
) -> None:
    """Answer a question from the ingested documents, citing sources."""
    from ragloom.runtime import open_assistant

    question = _question(question)
    with open_assistant() as graph:
        config = _config(thread)
        if stream and not as_json:
            final, streamed = stream_answer(graph, question, config)
            _print_answer(final, streamed=streamed)
            return
        result = graph.invoke({"question": question}, config)
    if as_json:
        plain = {key: value for key, value in result.items() if key != "messages"}
        print(json.dumps(plain, indent=2, default=str))
    else:
        _print_answer(result)


def chat(
    thread: str = typer.Option(None, "--thread", help="Thread id to continue."),
) -> None:
    """Chat on one thread (a REPL). Empty line or Ctrl-D quits."""
    from ragloom.core.text import clean_query
    from ragloom.runtime import open_assistant

    config = _config(thread)
    thread_id = escape(str(config["configurable"]["thread_id"]))
    console.print(f"[dim]thread {thread_id} — empty line quits[/dim]")
    with open_assistant() as graph:
        while True:
            try:
                question = clean_query(console.input("[bold cyan]you> [/bold cyan]"))
            except (EOFError, KeyboardInterrupt):
                break
            if not question:
                break
            _print_answer(graph.invoke({"question": question}, config))
            console.print()


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes (share threads "
                                "through the PostgreSQL or SQLite checkpointer)."),
) -> None:
    """Serve the assistant over HTTP: OpenAI-compatible /v1/chat/completions, /v1/ask (+ SSE),
    /v1/ingest, /v1/summarize (docs/serving.md). Without API keys, loopback only."""
    from ragloom.core.extras import missing_extra
    from ragloom.runtime import setup

    try:
        import uvicorn  # noqa: F401 - ragloom.server runs it; missing, say so before setting up

        from ragloom.server import serve as run_server
    except ModuleNotFoundError as exc:
        if exc.name not in {"fastapi", "starlette", "uvicorn"}:
            raise
        raise missing_extra("server", exc.name, "ragloom serve") from exc

    run_server(setup(), host=host, port=port, workers=workers)


def register(app: typer.Typer) -> None:
    app.command()(ask)
    app.command()(chat)
    app.command()(serve)
