"""Stable source ids: one id per file whatever the spelling, no collisions, a prune that only
removes what vanished, and old-style stores named as such."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ragloom.core.documents import Chunk
from ragloom.core.testing import HashingEmbedder
from ragloom.tools.ingest import ingest_paths, load_document, source_id, split_document
from ragloom.tools.stores.base import Filters
from ragloom.tools.stores.embedded import EmbeddedStore
from tests.tools.helpers import CountingEmbedder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The current directory (conftest chdirs to tmp_path) holding docs/ and notes/."""
    files = {
        "docs/cli.md": "# CLI\n\nThe command line reference.\n",
        "docs/index.md": "# Docs index\n\nStart here for the docs.\n",
        "docs/guide/index.md": "# Guide index\n\nStart here for the guide.\n",
        "notes/todo.txt": "Things to do: water the plants.\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def _store(tmp_path: Path, embedder: HashingEmbedder | None = None) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "store.db", embedder or HashingEmbedder(64))


def test_every_spelling_of_a_folder_gives_the_same_ids(project: Path) -> None:
    (project / "link").symlink_to(project / "docs")
    spellings = ["docs", "./docs", "docs/", str(project / "docs"), "docs/guide/..", "link"]
    ids = {
        "docs/cli.md", "docs/index.md", "docs/guide/index.md",
    }
    embedder = CountingEmbedder(64)
    with _store(project, embedder) as store:
        first = ingest_paths([spellings[0]], store, progress=False)
        assert first.ingested == 3 and set(store.sources()) == ids
        embedded = len(embedder.embedded)
        for spelling in spellings[1:]:
            again = ingest_paths([spelling], store, progress=False, prune=True)
            assert (again.skipped_unchanged, again.ingested, again.removed) == (3, 0, 0), spelling
        assert set(store.sources()) == ids and len(embedder.embedded) == embedded
    assert source_id("./docs/cli.md") == source_id(project / "docs" / "cli.md") == "docs/cli.md"
    assert source_id("link/cli.md") == "docs/cli.md"  # folders resolve, the name is kept


def test_two_index_files_both_survive_and_are_counted(project: Path) -> None:
    with _store(project) as store:
        report = ingest_paths(["docs/guide", "docs"], store, progress=False)
        # docs/guide/index.md reached twice (a folder and its parent) is ingested once
        assert (report.files_seen, report.ingested, report.failed) == (3, 3, [])
        assert {"docs/index.md", "docs/guide/index.md"} <= set(store.sources())
        titles = {c.source: c.title for c in store.search("index start", k=10, mode="bm25")}
        assert titles["docs/index.md"] == "Docs index"
        assert titles["docs/guide/index.md"] == "Guide index"


def test_the_same_file_twice_is_one_source(project: Path) -> None:
    with _store(project) as store:
        report = ingest_paths(
            ["docs/cli.md", "./docs/cli.md", project / "docs" / "cli.md", "docs"], store,
            progress=False,
        )
        assert (report.files_seen, report.ingested) == (3, 3)


def test_path_filter_matches_the_folder_given(project: Path) -> None:
    with _store(project) as store:
        ingest_paths(["docs/", "notes"], store, progress=False)
        hits = store.search("start here", k=10, mode="bm25", filters=Filters.parse("path:docs/"))
        assert hits and all(h.source.startswith("docs/") for h in hits)
        guide = store.search("start here", k=10, filters=Filters.parse("path:docs/guide/"))
        assert {h.source for h in guide} == {"docs/guide/index.md"}


def test_root_names_sources_and_outside_files_keep_absolute_paths(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("elsewhere") / "far.md"
    outside.write_text("# Far\n\nFar away text.\n")
    with _store(project) as store:
        ingest_paths(["docs", outside], store, root="docs", progress=False)
        assert set(store.sources()) == {
            "cli.md", "index.md", "guide/index.md", os.path.realpath(outside),
        }
        chunks = store.get_source("guide/index.md")
        assert chunks[0].metadata["path"] == (project / "docs" / "guide" / "index.md").as_posix()


def test_prune_removes_only_what_vanished_under_the_paths_given(project: Path) -> None:
    with _store(project) as store:
        ingest_paths(["docs", "notes"], store, progress=False)
        (project / "docs" / "cli.md").unlink()
        (project / "notes" / "todo.txt").unlink()
        report = ingest_paths([str(project / "docs")], store, progress=False, prune=True)
        assert report.removed == 1
        # notes/ was not given: its vanished file stays until notes/ is pruned
        assert set(store.sources()) == {"docs/index.md", "docs/guide/index.md", "notes/todo.txt"}
        assert ingest_paths(["notes/"], store, progress=False, prune=True).removed == 1
        assert "notes/todo.txt" not in store.sources()


def test_prune_keeps_sources_it_cannot_check(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose folder cannot be read (EACCES on lstat) is not known to be gone: kept."""
    with _store(project) as store:
        ingest_paths(["docs"], store, progress=False)
        gone = project / "docs" / "guide" / "index.md"
        gone.unlink()
        real_lstat = os.lstat

        def lstat(path: str, *args: object, **kwargs: object) -> os.stat_result:
            if os.fspath(path) == gone.as_posix():
                raise PermissionError(13, "Permission denied", str(path))
            return real_lstat(path, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "lstat", lstat)
        report = ingest_paths(["docs"], store, progress=False, prune=True)
        assert report.removed == 0 and "docs/guide/index.md" in store.sources()
        monkeypatch.setattr(os, "lstat", real_lstat)
        assert ingest_paths(["docs"], store, progress=False, prune=True).removed == 1


def test_prune_with_another_root_deletes_nothing_that_exists(project: Path) -> None:
    with _store(project) as store:
        ingest_paths(["docs"], store, progress=False)
        report = ingest_paths(["docs"], store, root="docs", progress=False, prune=True)
        assert report.removed == 0 and report.ingested == 3  # new names for the same files
        assert {"docs/cli.md", "cli.md"} <= set(store.sources())
        assert any("--root" in note for note in report.notes)


def test_prune_of_a_single_file_argument(project: Path) -> None:
    with _store(project) as store:
        ingest_paths(["docs"], store, progress=False)
        report = ingest_paths(["docs/index.md"], store, progress=False, prune=True)
        assert report.removed == 0 and len(store.sources()) == 3


def _legacy(store: EmbeddedStore, path: Path, source: str) -> None:
    """Store `path` as the old pipeline did: named `source`, no recorded path."""
    doc = load_document(path, source=source)
    chunks = split_document(doc)
    for chunk in chunks:
        chunk.metadata.pop("path", None)
    store.replace_source(source, doc.content_hash, chunks)


def test_old_style_ids_are_named_and_pruned_as_duplicates(project: Path) -> None:
    with _store(project) as store:
        _legacy(store, project / "docs" / "cli.md", "cli.md")  # old `ingest docs/`
        _legacy(store, project / "notes" / "todo.txt", "todo.txt")  # unrelated old source
        plain = ingest_paths(["docs"], store, progress=False)
        assert plain.ingested == 3 and plain.old_style == 1
        assert any("old-style" in n and "--prune" in n for n in plain.notes)
        assert "cli.md" in store.sources()  # nothing deleted without --prune

        pruned = ingest_paths(["docs"], store, progress=False, prune=True)
        assert pruned.removed == 1 and "cli.md" not in store.sources()
        assert "todo.txt" in store.sources()  # unplaceable: kept, and the note says so
        assert any("re-ingest into a fresh store" in n for n in pruned.notes)


def test_unchanged_old_style_sources_get_their_path_without_re_embedding(
    project: Path,
) -> None:
    embedder = CountingEmbedder(64)
    with _store(project, embedder) as store:
        for name in ("docs/cli.md", "docs/index.md", "docs/guide/index.md"):
            _legacy(store, project / name, name)  # old `ingest .`: same ids, no path
        embedded = len(embedder.embedded)
        report = ingest_paths(["docs"], store, progress=False)
        assert (report.skipped_unchanged, report.migrated) == (3, 3)
        assert len(embedder.embedded) == embedded  # vectors reused
        assert report.notes and "before stable source ids" in report.notes[0]
        chunks: list[Chunk] = store.get_source("docs/cli.md")
        assert chunks[0].metadata["path"] == (project / "docs" / "cli.md").as_posix()
        (project / "docs" / "cli.md").unlink()
        assert ingest_paths(["docs"], store, progress=False, prune=True).removed == 1
        assert ingest_paths(["docs"], store, progress=False).notes == []


def test_an_old_style_twin_stays_when_its_new_copy_failed_to_store(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragloom.core.errors import StoreError

    with _store(project) as store:
        _legacy(store, project / "docs" / "cli.md", "cli.md")
        real = store.replace_source

        def flaky(source: str, *args: object, **kwargs: object) -> int:
            if source == "docs/cli.md":
                raise StoreError("disk full")
            return real(source, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(store, "replace_source", flaky)
        report = ingest_paths(["docs"], store, progress=False, prune=True)
        assert [f.source for f in report.failed] == ["docs/cli.md"]
        assert report.removed == 0 and "cli.md" in store.sources()  # the only copy
