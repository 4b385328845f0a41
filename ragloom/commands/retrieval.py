"""CLI: `ragloom ingest`, `ragloom search`, `ragloom sources`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ragloom.core.settings import Settings

StoreOption = Annotated[
    Path | None, typer.Option("--store", help="Embedded store file (default: settings.store.path).")
]
TenantOption = Annotated[str | None, typer.Option("--tenant", help="Tenant to read/write.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _settings(store: Path | None = None, collection: str | None = None) -> Settings:
    from ragloom.core.settings import load_settings
    from ragloom.runtime import setup

    settings = setup(load_settings())
    if store is not None:
        settings.store.path = store
    if collection:
        settings.store.collection = collection
    return settings


def _fail(exc: Exception) -> typer.Exit:
    """Print `error: ...` on stderr (never parsed as markup: `[code]` and user text stay as is)."""
    from rich.console import Console
    from rich.text import Text

    Console(stderr=True).print(Text.assemble(("error:", "red"), " ", str(exc)), soft_wrap=True)
    return typer.Exit(code=1)


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest.")],
    collection: Annotated[
        str | None, typer.Option("--collection", help="Weaviate collection name.")
    ] = None,
    tenant: TenantOption = None,
    chunk_tokens: Annotated[int | None, typer.Option("--chunk-tokens", min=32)] = None,
    overlap: Annotated[int | None, typer.Option("--overlap", min=0)] = None,
    store: StoreOption = None,
    root: Annotated[
        Path | None,
        typer.Option("--root", help="Sources are named relative to this folder "
                     "(default: the current directory); files outside keep their absolute path."),
    ] = None,
    prune: Annotated[
        bool, typer.Option("--prune", help="Delete stored sources whose files vanished "
                           "under the given paths.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Load, chunk, embed and store files; unchanged files are skipped.

    Exit status: 0 all ingested or unchanged, 2 some files failed, 1 none went in or an error.
    """
    from ragloom.core.errors import RagloomError
    from ragloom.tools.ingest import ingest_paths
    from ragloom.tools.stores import build_store

    if root is not None and not root.is_dir():
        raise _fail(ValueError(f"--root {root} is not a folder"))
    settings = _settings(store, collection)
    try:
        chunk_store = build_store(settings)
    except RagloomError as exc:
        raise _fail(exc) from exc
    try:
        report = ingest_paths(
            paths, chunk_store, root=root, tenant=tenant or settings.store.tenant,
            chunk_tokens=chunk_tokens or settings.retrieval.chunk_tokens,
            overlap=settings.retrieval.chunk_overlap if overlap is None else overlap,
            progress=not as_json, prune=prune,
        )
    finally:
        chunk_store.close()
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report)
    if report.exit_code:
        raise typer.Exit(code=report.exit_code)


def _print_report(report: Any) -> None:
    """The summary line, notes and failure table; file names and reasons are plain text."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    console.print(Text(
        f"files {report.files_seen}  ingested {report.ingested}  "
        f"skipped (unchanged) {report.skipped_unchanged}  removed {report.removed}  "
        f"failed {len(report.failed)}  "
        f"chunks {report.chunks_written} (embedded {report.chunks_embedded})  "
        f"{report.seconds:.1f}s ({report.seconds_embedding:.1f}s embedding)"
    ))
    for note in report.notes:
        console.print(Text.assemble(("note:", "yellow"), " ", note))
    if report.failed:
        table = Table("file", "code", "reason", title="failed")
        for failure in report.failed:
            table.add_row(Text(failure.source), Text(failure.code), Text(failure.reason))
        console.print(table)
        if report.ingested or report.skipped_unchanged:
            console.print(Text("some files failed: exit status 2"))


def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    mode: Annotated[str | None, typer.Option("--mode", help="bm25, vector or hybrid.")] = None,
    k: Annotated[int | None, typer.Option("--k", min=1)] = None,
    alpha: Annotated[float | None, typer.Option("--alpha", min=0.0, max=1.0)] = None,
    filters: Annotated[
        str, typer.Option("--filter", help="e.g. 'path:library/ tag:x after:2024-01-01'.")
    ] = "",
    tenant: TenantOption = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search the store and print the best chunks."""
    from ragloom.core.errors import InvalidQueryError, RagloomError
    from ragloom.core.text import clean_query
    from ragloom.runtime import open_store
    from ragloom.tools.retrieval import Retriever, chunk_result

    query, tenant = clean_query(query), clean_query(tenant) if tenant else tenant
    if not query:
        raise _fail(InvalidQueryError("the query is empty; say what to look for"))
    settings = _settings(store)
    try:
        with open_store(settings) as chunk_store:
            retriever = Retriever(
                chunk_store, mode=mode or settings.retrieval.mode,  # type: ignore[arg-type]
                alpha=settings.retrieval.alpha if alpha is None else alpha,
                k=k or settings.retrieval.k, tenant=tenant or settings.store.tenant,
            )
            chunks = retriever.search(query, filters=filters)
            empty = not chunks and not chunk_store.sources(tenant=retriever.tenant)
    except RagloomError as exc:
        raise _fail(exc) from exc
    if empty:
        who = f"tenant {retriever.tenant!r}" if retriever.tenant else "the store"
        typer.echo(f"note: {who} has no documents; ingest some first (ragloom ingest PATH)",
                   err=True)  # fmt: skip
    if as_json:
        typer.echo(json.dumps([chunk_result(c) for c in chunks], indent=2))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ragloom.core.text import printable

    table = Table("#", "score", "source", "heading", "text")
    for rank, chunk in enumerate(chunks, 1):
        snippet = " ".join(printable(chunk.text).split())[:160]
        table.add_row(
            str(rank), f"{chunk.score or 0:.3f}", Text(printable(chunk.source)),
            Text(printable(chunk.heading)), Text(snippet),
        )
    Console().print(table)


def sources(
    tenant: TenantOption = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """List ingested sources with their content hashes."""
    from ragloom.core.errors import RagloomError
    from ragloom.runtime import open_store

    settings = _settings(store)
    try:
        with open_store(settings) as chunk_store:
            found = chunk_store.sources(tenant=tenant or settings.store.tenant)
    except RagloomError as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    for source, digest in found.items():
        typer.echo(f"{digest[:12]}  {source}")
    typer.echo(f"{len(found)} sources")


def register(app: typer.Typer) -> None:
    """Add the retrieval commands to the `ragloom` app."""
    app.command("ingest")(ingest)
    app.command("search")(search)
    app.command("sources")(sources)
