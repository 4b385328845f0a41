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
    from rich.console import Console

    Console(stderr=True).print(f"[red]error:[/red] {exc}")
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
    prune: Annotated[
        bool, typer.Option("--prune", help="Delete stored sources these paths no longer hold.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Load, chunk, embed and store files; unchanged files are skipped."""
    from ragloom.core.errors import RagloomError
    from ragloom.tools.ingest import ingest_paths
    from ragloom.tools.stores import build_store

    settings = _settings(store, collection)
    try:
        chunk_store = build_store(settings)
    except RagloomError as exc:
        raise _fail(exc) from exc
    try:
        report = ingest_paths(
            paths, chunk_store, tenant=tenant or settings.store.tenant,
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
    if report.failed and not report.ingested and not report.skipped_unchanged:
        raise typer.Exit(code=1)


def _print_report(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"files {report.files_seen}  ingested {report.ingested}  "
        f"skipped (unchanged) {report.skipped_unchanged}  removed {report.removed}  "
        f"failed {len(report.failed)}  "
        f"chunks {report.chunks_written} (embedded {report.chunks_embedded})  "
        f"{report.seconds:.1f}s ({report.seconds_embedding:.1f}s embedding)"
    )
    if report.failed:
        table = Table("file", "code", "reason", title="failed")
        for failure in report.failed:
            table.add_row(failure.source, failure.code, failure.reason)
        console.print(table)


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
    from ragloom.core.errors import RagloomError
    from ragloom.runtime import open_store
    from ragloom.tools.retrieval import Retriever, chunk_result

    settings = _settings(store)
    try:
        with open_store(settings) as chunk_store:
            retriever = Retriever(
                chunk_store, mode=mode or settings.retrieval.mode,  # type: ignore[arg-type]
                alpha=settings.retrieval.alpha if alpha is None else alpha,
                k=k or settings.retrieval.k, tenant=tenant or settings.store.tenant,
            )
            chunks = retriever.search(query, filters=filters)
    except RagloomError as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps([chunk_result(c) for c in chunks], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("#", "score", "source", "heading", "text")
    for rank, chunk in enumerate(chunks, 1):
        snippet = " ".join(chunk.text.split())[:160]
        table.add_row(str(rank), f"{chunk.score or 0:.3f}", chunk.source, chunk.heading, snippet)
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
