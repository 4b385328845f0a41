"""Ingest files and folders into a chunk store, idempotently.

For each file: load, compare its content hash with the one the store recorded for that source
(unchanged: skipped, nothing embedded), split by heading, and swap the source's chunks atomically
(`store.replace_source`). A bad file becomes one `FileFailure` line in the report (its IngestError
code and reason) and ingestion goes on; no exception escapes `ingest_paths`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from ragloom.core.errors import EmptyFileError, IngestError, RagloomError, UnsupportedFileError
from ragloom.tools.ingest.chunking import split_document
from ragloom.tools.ingest.loaders import MAX_FILE_BYTES, SUPPORTED_SUFFIXES, load_document
from ragloom.tools.stores.base import ChunkStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class FileFailure:
    """One file that was not ingested: its source, the IngestError code and the reason."""

    source: str
    code: str
    reason: str


@dataclass
class IngestReport:
    """What one ingestion run did."""

    files_seen: int = 0
    ingested: int = 0
    chunks_written: int = 0
    chunks_embedded: int = 0
    skipped_unchanged: int = 0
    removed: int = 0
    failed: list[FileFailure] = field(default_factory=list)
    seconds: float = 0.0
    seconds_embedding: float = 0.0

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_written / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["chunks_per_second"] = round(self.chunks_per_second, 2)
        return data


@dataclass(frozen=True)
class _Input:
    path: Path
    source: str


class _TimedEmbedder:
    """Wraps the store's embedder to measure time (and texts) spent embedding."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimensions = inner.dimensions
        self.seconds = 0.0
        self.texts = 0

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self.inner.embed_documents(texts)  # type: ignore[no-any-return]
        finally:
            self.seconds += time.perf_counter() - started
            self.texts += len(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def ingest_paths(
    paths: Sequence[str | Path],
    store: ChunkStore,
    *,
    tenant: str | None = None,
    chunk_tokens: int = 256,
    overlap: int = 32,
    progress: bool = True,
    max_bytes: int = MAX_FILE_BYTES,
    prune: bool = False,
) -> IngestReport:
    """Ingest files and folders (recursively) into `store`; returns the report.

    A folder's files are named relative to it, POSIX style (`library/os.rst`); a file given
    directly keeps the path as given. With `prune`, sources in the store (this tenant) that this
    run did not see are deleted, so the store mirrors `paths` (files that failed to load count
    as seen and keep their old chunks).
    """
    started = time.perf_counter()
    report = IngestReport()
    inputs = list(_discover(paths, report))
    report.files_seen = len(inputs) + len(report.failed)
    timer = _TimedEmbedder(store.embedder) if hasattr(store, "embedder") else None
    if timer is not None:
        store.embedder = timer  # type: ignore[attr-defined]
    try:
        try:
            known = store.sources(tenant=tenant)
        except RagloomError as exc:
            report.failed.append(FileFailure("(store)", exc.code, exc.message))
            return report
        with _Progress(progress, len(inputs)) as advance:
            for item in inputs:
                _ingest_one(item, store, known, report, tenant, chunk_tokens, overlap, max_bytes)
                advance(item.source)
        if prune:
            seen = {item.source for item in inputs} | {f.source for f in report.failed}
            for source in sorted(set(known) - seen):
                store.delete(source, tenant=tenant)
                report.removed += 1
    finally:
        if timer is not None:
            store.embedder = timer.inner  # type: ignore[attr-defined]
            report.seconds_embedding = timer.seconds
            report.chunks_embedded = timer.texts
        report.seconds = time.perf_counter() - started
    log.info("ingest.done", **{k: v for k, v in report.to_dict().items() if k != "failed"},
             failed=len(report.failed))
    return report


def _ingest_one(
    item: _Input, store: ChunkStore, known: dict[str, str], report: IngestReport,
    tenant: str | None, chunk_tokens: int, overlap: int, max_bytes: int,
) -> None:
    try:
        doc = load_document(item.path, source=item.source, max_bytes=max_bytes)
        if known.get(item.source) == doc.content_hash:
            report.skipped_unchanged += 1
            return
        chunks = split_document(doc, chunk_tokens=chunk_tokens, overlap=overlap)
        if not chunks:
            raise EmptyFileError("no chunks after splitting", path=item.source)
        report.chunks_written += store.replace_source(
            doc.source, doc.content_hash, chunks, tenant=tenant
        )
        report.ingested += 1
    except RagloomError as exc:
        _fail(report, item.source, exc.code, exc.message)
    except Exception as exc:  # one bad file never stops the run
        _fail(report, item.source, IngestError.code, f"{type(exc).__name__}: {exc}")


def _fail(report: IngestReport, source: str, code: str, reason: str) -> None:
    report.failed.append(FileFailure(source, code, reason))
    log.warning("ingest.file_failed", source=source, code=code, reason=reason)


def _discover(paths: Sequence[str | Path], report: IngestReport) -> Iterator[_Input]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from _walk(path, report)
        elif path.exists() or path.is_symlink():
            yield _Input(path, path.as_posix())
        else:
            report.failed.append(FileFailure(path.as_posix(), IngestError.code, "no such file"))


def _walk(root: Path, report: IngestReport) -> Iterator[_Input]:
    """Files under `root` in sorted order; hidden entries ignored; symlink loops reported."""
    seen: set[str] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        rel = folder.relative_to(root).as_posix()
        if real in seen:
            report.failed.append(FileFailure(
                rel + "/", IngestError.code, "directory symlink loop (already visited)"
            ))
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            report.failed.append(FileFailure(
                (rel + "/") if rel != "." else root.as_posix(), IngestError.code,
                f"cannot list directory: {exc.strerror or exc}",
            ))
            continue
        subfolders: list[Path] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            source = path.relative_to(root).as_posix()
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                subfolders.append(path)
            elif path.suffix.lower() not in SUPPORTED_SUFFIXES:
                report.failed.append(FileFailure(
                    source, UnsupportedFileError.code,
                    f"unsupported file type {path.suffix or '(none)'!r}",
                ))
            else:
                yield _Input(path, source)
        stack.extend(reversed(subfolders))


class _Progress:
    """A rich progress bar (or nothing) with an `advance(label)` callable."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda label: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.description}"), transient=False,
        )
        self._progress.__enter__()
        self._task = self._progress.add_task("", total=self.total)

        def advance(label: str) -> None:
            self._progress.update(self._task, advance=1, description=label[-50:])

        return advance

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

