"""Ingest files and folders into a chunk store, idempotently.

For each file: load, compare its content hash with the one the store recorded for that source
(unchanged: skipped, nothing embedded), split by heading, and swap the source's chunks atomically
(`store.replace_source`). A bad file becomes one `FileFailure` line in the report (its IngestError
code and reason) and ingestion goes on; no exception escapes `ingest_paths`.

Source identity: a file's id is its path relative to a root (default: the current directory),
POSIX style, with every folder on the way resolved (symlinks, `.`, `..`) and the file name kept:
`./docs`, `docs/` and `/abs/docs` give the same ids (`docs/cli.md`), and two `index.md` in two
folders stay two sources. A file outside the root is named by its absolute path. Every chunk
records the absolute path in `metadata["path"]`, which is what `prune` checks before deleting.
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

from ragloom.core.errors import (
    EmptyFileError,
    IngestError,
    RagloomError,
    StoreWriteError,
    UnsupportedFileError,
)
from ragloom.tools.ingest.chunking import split_document
from ragloom.tools.ingest.loaders import MAX_FILE_BYTES, SUPPORTED_SUFFIXES, load_document
from ragloom.tools.stores.base import ChunkStore

log = structlog.get_logger(__name__)

EXIT_OK = 0
EXIT_NOTHING_INGESTED = 1
EXIT_SOME_FAILED = 2


@dataclass(frozen=True)
class FileFailure:
    """One file that was not ingested: its source, the IngestError code and the reason; for a
    store write that failed part-way, `chunks` names the chunk ids that were not stored."""

    source: str
    code: str
    reason: str
    chunks: tuple[str, ...] = ()


@dataclass
class IngestReport:
    """What one ingestion run did.

    `old_style` counts stored sources whose ids predate stable source ids (no recorded path);
    `migrated` counts unchanged sources re-written to record their path; `notes` are lines
    for the user (old-style ids, what `prune` kept and why).
    """

    files_seen: int = 0
    ingested: int = 0
    chunks_written: int = 0
    chunks_embedded: int = 0
    skipped_unchanged: int = 0
    removed: int = 0
    failed: list[FileFailure] = field(default_factory=list)
    seconds: float = 0.0
    seconds_embedding: float = 0.0
    root: str = ""
    old_style: int = 0
    migrated: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_written / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """0: no file failed; 2: some failed, others ingested or unchanged; 1: files failed and
        none was ingested or unchanged (or the store failed)."""
        if not self.failed:
            return EXIT_OK
        if self.ingested or self.skipped_unchanged:
            return EXIT_SOME_FAILED
        return EXIT_NOTHING_INGESTED

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["chunks_per_second"] = round(self.chunks_per_second, 2)
        data["exit_code"] = self.exit_code
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


def source_id(path: str | Path, root: str | Path | None = None) -> str:
    """The stable id of the file at `path`: relative to `root` (default: the current directory)
    with its folders resolved and its name kept, POSIX style; the absolute path when outside."""
    return _relative(_location(Path(path)), _resolve_root(root))


def ingest_paths(
    paths: Sequence[str | Path],
    store: ChunkStore,
    *,
    root: str | Path | None = None,
    tenant: str | None = None,
    chunk_tokens: int = 256,
    overlap: int = 32,
    progress: bool = True,
    max_bytes: int = MAX_FILE_BYTES,
    prune: bool = False,
) -> IngestReport:
    """Ingest files and folders (recursively) into `store`; returns the report.

    Sources are named by `source_id` relative to `root` (default: the current directory). The
    same file given twice (or by two spellings) is ingested once. With `prune`, a stored source
    (this tenant) is deleted only when its recorded path lies under one of `paths` and no longer
    exists; a source whose file is still there is kept whatever id this run gives it.
    """
    started = time.perf_counter()
    base = _resolve_root(root)
    report = IngestReport(root=base.as_posix())
    inputs = _unique(_discover(paths, base, report))
    report.files_seen = len(inputs) + len(report.failed)
    timer = _TimedEmbedder(store.embedder) if hasattr(store, "embedder") else None
    if timer is not None:
        store.embedder = timer  # type: ignore[attr-defined]
    try:
        try:
            known = store.sources(tenant=tenant)
            old_store = _has_old_style_ids(store, known, tenant)
        except RagloomError as exc:
            report.failed.append(FileFailure("(store)", exc.code, exc.message))
            return report
        hashes: dict[str, str] = {}  # sources stored or unchanged in this run -> content hash
        with _Progress(progress, len(inputs)) as advance:
            for item in inputs:
                _ingest_one(
                    item, store, known, report, hashes, tenant, chunk_tokens, overlap, max_bytes,
                    stamp=old_store,
                )
                advance(item.source)
        _reconcile(paths, base, store, known, hashes, report, tenant, prune=prune)
        if old_store:
            report.notes.insert(0, (
                "this store holds sources ingested before stable source ids (no recorded path)"
                + (f"; recorded the path of {report.migrated} unchanged sources"
                   if report.migrated else "")
            ))
    finally:
        if timer is not None:
            store.embedder = timer.inner  # type: ignore[attr-defined]
            report.seconds_embedding = timer.seconds
            report.chunks_embedded = timer.texts
        report.seconds = time.perf_counter() - started
    log.info("ingest.done", **{
        k: v for k, v in report.to_dict().items() if k not in ("failed", "notes")
    }, failed=len(report.failed))
    return report


def _ingest_one(
    item: _Input, store: ChunkStore, known: dict[str, str], report: IngestReport,
    hashes: dict[str, str], tenant: str | None, chunk_tokens: int, overlap: int, max_bytes: int,
    *, stamp: bool,
) -> None:
    try:
        doc = load_document(item.path, source=item.source, max_bytes=max_bytes)
        if known.get(item.source) == doc.content_hash:
            hashes[item.source] = doc.content_hash
            report.skipped_unchanged += 1
            if stamp:
                try:
                    _stamp_path(store, item, doc.content_hash, report, tenant)
                except RagloomError as exc:  # the source is fine as it is; only not migrated
                    log.warning("ingest.stamp_failed", source=item.source, code=exc.code,
                                reason=exc.message)
            return
        chunks = split_document(doc, chunk_tokens=chunk_tokens, overlap=overlap)
        if not chunks:
            raise EmptyFileError("no chunks after splitting", path=item.source)
        for chunk in chunks:
            chunk.metadata["path"] = item.path.as_posix()
        report.chunks_written += store.replace_source(
            doc.source, doc.content_hash, chunks, tenant=tenant
        )
        hashes[item.source] = doc.content_hash  # stored: an old-style twin may now go
        report.ingested += 1
    except StoreWriteError as exc:
        _fail(report, item.source, exc.code, exc.message, chunks=tuple(sorted(exc.failed)))
    except RagloomError as exc:
        _fail(report, item.source, exc.code, exc.message)
    except Exception as exc:  # one bad file never stops the run
        _fail(report, item.source, IngestError.code, f"{type(exc).__name__}: {exc}")


def _stamp_path(
    store: ChunkStore, item: _Input, digest: str, report: IngestReport, tenant: str | None
) -> None:
    """Record the path on an unchanged source written before stable ids (same chunk ids and
    text, so the embedded store reuses its vectors)."""
    chunks = store.get_source(item.source, tenant=tenant)
    if not chunks or all(c.metadata.get("path") for c in chunks):
        return
    for chunk in chunks:
        chunk.metadata["path"] = item.path.as_posix()
    store.replace_source(item.source, digest, chunks, tenant=tenant)
    report.migrated += 1


def _fail(
    report: IngestReport, source: str, code: str, reason: str, *, chunks: tuple[str, ...] = ()
) -> None:
    report.failed.append(FileFailure(source, code, reason, chunks))
    log.warning("ingest.file_failed", source=source, code=code, reason=reason,
                chunks=len(chunks) or None)


# --- source identity --------------------------------------------------------------------------


def _resolve_root(root: str | Path | None) -> Path:
    return Path(os.path.realpath(Path.cwd() if root is None else Path(root)))


def _location(path: Path) -> Path:
    """Absolute path with every folder resolved and the final name kept (a symlinked file keeps
    its own name); a path ending in `..` is a folder and is resolved whole."""
    absolute = path.absolute()
    if absolute.name in ("", ".."):
        return Path(os.path.realpath(absolute))
    return Path(os.path.realpath(absolute.parent)) / absolute.name


def _relative(location: Path, root: Path) -> str:
    try:
        return location.relative_to(root).as_posix()
    except ValueError:
        return location.as_posix()


def _unique(inputs: Iterator[_Input]) -> list[_Input]:
    """Each id once: the same file reached twice (two spellings, a folder and a file in it)."""
    seen: dict[str, _Input] = {}
    for item in inputs:
        seen.setdefault(item.source, item)
    return list(seen.values())


def _discover(paths: Sequence[str | Path], root: Path, report: IngestReport) -> Iterator[_Input]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from _walk(Path(os.path.realpath(path)), root, report)
        elif path.exists() or path.is_symlink():
            location = _location(path)
            yield _Input(location, _relative(location, root))
        else:
            report.failed.append(FileFailure(
                _relative(_location(path), root), IngestError.code, "no such file"
            ))


def _walk(top: Path, root: Path, report: IngestReport) -> Iterator[_Input]:
    """Files under `top` in sorted order; hidden entries ignored; symlink loops reported."""
    seen: set[str] = set()
    stack = [top]
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        if real in seen:
            report.failed.append(FileFailure(
                _relative(_location(folder), root) + "/", IngestError.code,
                "directory symlink loop (already visited)",
            ))
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(real), key=lambda e: e.name)
        except OSError as exc:
            report.failed.append(FileFailure(
                _relative(Path(real), root) + "/", IngestError.code,
                f"cannot list directory: {exc.strerror or exc}",
            ))
            continue
        subfolders: list[Path] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(real) / entry.name
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                subfolders.append(folder / entry.name)
            elif path.suffix.lower() not in SUPPORTED_SUFFIXES:
                report.failed.append(FileFailure(
                    _relative(path, root), UnsupportedFileError.code,
                    f"unsupported file type {path.suffix or '(none)'!r}",
                ))
            else:
                yield _Input(path, _relative(path, root))
        stack.extend(reversed(subfolders))


# --- old-style ids and prune ------------------------------------------------------------------

_SAMPLE = 5


def _has_old_style_ids(store: ChunkStore, known: dict[str, str], tenant: str | None) -> bool:
    """Whether the store holds sources written before stable ids (chunks without a path)."""
    for source in sorted(known)[:_SAMPLE]:
        chunks = store.get_source(source, tenant=tenant)
        if chunks and not chunks[0].metadata.get("path"):
            return True
    return False


def _reconcile(
    paths: Sequence[str | Path], root: Path, store: ChunkStore, known: dict[str, str],
    hashes: dict[str, str], report: IngestReport, tenant: str | None, *, prune: bool,
) -> None:
    """Find stored sources this run did not touch: old-style duplicates of files stored now,
    and (with `prune`) sources whose files vanished under `paths`."""
    touched = set(hashes) | {f.source for f in report.failed}
    suffixes: dict[str, str] = {}
    for source in hashes:
        parts = source.split("/")
        for i in range(1, len(parts)):
            suffixes.setdefault("/".join(parts[i:]), source)
    folders, files = _scope(paths)
    duplicates: list[tuple[str, str]] = []
    unplaced = kept = 0
    try:
        for source in sorted(set(known) - touched):
            twin = suffixes.get(source)
            if not prune and twin is None:
                continue
            recorded = source if os.path.isabs(source) else _recorded_path(store, source, tenant)
            if recorded is None:  # written before stable ids
                report.old_style += 1
                if twin is not None and hashes[twin] == known[source]:
                    duplicates.append((source, twin))
                    if prune:
                        store.delete(source, tenant=tenant)
                        report.removed += 1
                else:
                    unplaced += 1
                continue
            if not prune or not _in_scope(Path(recorded), folders, files):
                continue
            if _vanished(recorded):
                store.delete(source, tenant=tenant)
                report.removed += 1
            else:
                kept += 1
    except RagloomError as exc:
        report.failed.append(FileFailure("(store)", exc.code, exc.message))
    if duplicates:
        example = f"e.g. {duplicates[0][0]!r} is now {duplicates[0][1]!r}"
        report.notes.append(
            f"removed {len(duplicates)} old-style source ids that duplicated files stored now "
            f"under stable ids ({example})" if prune else
            f"{len(duplicates)} stored sources have old-style ids that duplicate files stored "
            f"now under stable ids ({example}): run again with --prune to remove them"
        )
    if unplaced:
        report.notes.append(
            f"{unplaced} stored sources have old-style ids (named relative to the folder "
            "ingested, no recorded path); --prune cannot tell whether their files vanished and "
            "kept them: re-ingest into a fresh store to migrate"
        )
    if kept:
        report.notes.append(
            f"--prune kept {kept} stored sources whose files still exist (or could not be "
            f"checked) but were not seen under those names (ingested with another --root than "
            f"{root.as_posix()}?)"
        )


def _vanished(path: str) -> bool:
    """True only when the file is known to be gone: a folder we may not read (or any other
    error) keeps its sources."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def _recorded_path(store: ChunkStore, source: str, tenant: str | None) -> str | None:
    chunks = store.get_source(source, tenant=tenant)
    path = chunks[0].metadata.get("path") if chunks else None
    return str(path) if path else None


def _scope(paths: Sequence[str | Path]) -> tuple[list[Path], set[Path]]:
    """The folders (resolved) and files (located) this run was given: what prune may touch."""
    folders: list[Path] = []
    files: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            folders.append(Path(os.path.realpath(path)))
        else:
            files.add(_location(path))
    return folders, files


def _in_scope(recorded: Path, folders: list[Path], files: set[Path]) -> bool:
    return recorded in files or any(recorded.is_relative_to(f) for f in folders)


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
            TextColumn("{task.description}", markup=False), transient=False,
        )
        self._progress.__enter__()
        self._task = self._progress.add_task("", total=self.total)

        def advance(label: str) -> None:
            self._progress.update(self._task, advance=1, description=label[-50:])

        return advance

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

