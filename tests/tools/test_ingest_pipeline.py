"""Ingestion pipeline: idempotent re-ingest, per-file re-embedding, bad files reported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ragloom.core.errors import StoreError
from ragloom.core.testing import HashingEmbedder
from ragloom.tools.ingest import ingest_paths
from ragloom.tools.stores.embedded import EmbeddedStore
from tests.tools.helpers import CountingEmbedder, make_pdf

GOOD = {
    "guide/intro.md": "# Intro\n\nWelcome to the owl guide. Owls hunt at night.\n",
    "guide/deep/owls.rst": "Owls\n====\n\nBarn owls screech.\n\nDiet\n----\n\nMice and voles.\n",
    "notes.txt": "Plain notes about herons and egrets.\n" * 20,
    "page.html": "<html><body><h1>Herons</h1><p>Herons wade in shallow water.</p></body></html>",
    "paper.pdf": make_pdf(["Kingfishers dive for fish."], title="Kingfishers"),
}


def _make_corpus(root: Path) -> Path:
    for name, content in GOOD.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return _make_corpus(tmp_path / "corpus")


def test_folder_sources_are_relative_posix_paths(corpus: Path, tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "s.db", CountingEmbedder()) as store:
        report = ingest_paths([corpus], store, root=corpus, progress=False)
        assert report.failed == []
        assert report.files_seen == report.ingested == len(GOOD)
        assert set(store.sources()) == set(GOOD)
        assert report.chunks_written == store.count() > 0
        owls = store.get_source("guide/deep/owls.rst")
        assert owls[0].title == "Owls"
        # one small chunk holds the intro and "Diet": it is filed under what both share
        assert [c.heading_path for c in owls] == [("Owls",)]


def test_second_run_embeds_nothing(corpus: Path, tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    with EmbeddedStore(tmp_path / "s.db", embedder) as store:
        first = ingest_paths(
            [corpus], store, root=corpus, progress=False, chunk_tokens=32, overlap=4
        )
        calls, count = embedder.calls, store.count()
        assert first.chunks_embedded == len(embedder.embedded) == count
        assert first.seconds_embedding > 0
        second = ingest_paths(
            [corpus], store, root=corpus, progress=False, chunk_tokens=32, overlap=4
        )
        assert embedder.calls == calls
        assert second.skipped_unchanged == len(GOOD)
        assert second.ingested == second.chunks_written == second.chunks_embedded == 0
        assert store.count() == count


def test_editing_one_file_re_embeds_only_its_chunks(corpus: Path, tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    with EmbeddedStore(tmp_path / "s.db", embedder) as store:
        ingest_paths(
            [corpus], store, root=corpus, progress=False, chunk_tokens=32, overlap=4
        )
        old_ids = {c.id for c in store.get_source("notes.txt")}
        already = len(embedder.embedded)
        (corpus / "notes.txt").write_text("Herons are patient hunters.\n", encoding="utf-8")
        report = ingest_paths(
            [corpus], store, root=corpus, progress=False, chunk_tokens=32, overlap=4
        )
        assert report.ingested == 1 and report.skipped_unchanged == len(GOOD) - 1
        new_chunks = store.get_source("notes.txt")
        assert embedder.embedded[already:] == [c.text for c in new_chunks]
        assert not old_ids & {c.id for c in new_chunks}
        assert store.search("patient hunters", k=1, mode="bm25")[0].source == "notes.txt"


def test_twelve_bad_inputs_each_give_one_report_line(corpus: Path, tmp_path: Path) -> None:
    bad = corpus / "bad"
    bad.mkdir()
    (bad / "binary.txt").write_bytes(b"\x89PNG\x00\x00\x01binary")
    (bad / "empty.md").write_bytes(b"")
    (bad / "whitespace.rst").write_text("   \n\n\t  \n")
    (bad / "latin1.txt").write_bytes("d\u00e9j\u00e0 vu".encode("latin-1"))
    (bad / "huge.txt").write_text("big " * 5000)
    (bad / "picture.png").write_bytes(b"\x89PNG\r\n")
    (bad / "not-html.html").write_text("no markup in this so-called html file")
    (bad / "scripts-only.html").write_text("<html><script>var a = 1;</script></html>")
    (bad / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog truncated")
    os.symlink(bad / "missing-target.md", bad / "dangling.md")
    os.symlink(bad / "self-loop.txt", bad / "self-loop.txt")
    os.symlink("..", bad / "loop")
    embedder = CountingEmbedder()
    with EmbeddedStore(tmp_path / "s.db", embedder) as store:
        report = ingest_paths([corpus], store, root=corpus, progress=False, max_bytes=10_000)
        codes = {f.source: f.code for f in report.failed}
        assert len(report.failed) == 12 == len(codes)
        assert codes == {
            "bad/binary.txt": "decode_error",
            "bad/empty.md": "empty_file",
            "bad/whitespace.rst": "empty_file",
            "bad/latin1.txt": "decode_error",
            "bad/huge.txt": "file_too_large",
            "bad/picture.png": "unsupported_file",
            "bad/not-html.html": "parse_error",
            "bad/scripts-only.html": "empty_file",
            "bad/broken.pdf": "parse_error",
            "bad/dangling.md": "ingest",
            "bad/self-loop.txt": "ingest",
            "bad/loop/": "ingest",
        }
        assert all(f.reason for f in report.failed)
        assert report.ingested == len(GOOD)
        assert set(store.sources()) == set(GOOD)
        assert report.files_seen == len(GOOD) + 12


def test_a_store_failure_on_one_file_is_reported(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with EmbeddedStore(tmp_path / "s.db", CountingEmbedder()) as store:
        real = store.replace_source

        def flaky(source: str, *args: object, **kwargs: object) -> int:
            if source == "notes.txt":
                raise StoreError("disk full")
            if source == "page.html":
                raise RuntimeError("unexpected")
            return real(source, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(store, "replace_source", flaky)
        report = ingest_paths([corpus], store, root=corpus, progress=False)
        assert {(f.source, f.code) for f in report.failed} == {
            ("notes.txt", "store"), ("page.html", "ingest"),
        }
        assert report.ingested == len(GOOD) - 2


def test_single_files_missing_paths_and_tenants(corpus: Path, tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "s.db", CountingEmbedder()) as store:
        report = ingest_paths(
            [corpus / "notes.txt", tmp_path / "nope.md"], store, tenant="t1", progress=True
        )
        assert report.ingested == 1
        assert [(f.source, f.code, f.reason) for f in report.failed] == [
            ("nope.md", "ingest", "no such file")
        ]
        # named relative to the current directory (the default root), absolute path recorded
        assert list(store.sources(tenant="t1")) == ["corpus/notes.txt"]
        chunks = store.get_source("corpus/notes.txt", tenant="t1")
        assert {c.metadata["path"] for c in chunks} == {(corpus / "notes.txt").as_posix()}
        assert store.count() == 0


def test_prune_removes_sources_deleted_from_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("a.md", "b.md", "c.md"):
        (folder / name).write_text(f"# {name}\n\nSome text about {name}.\n")
    with EmbeddedStore(tmp_path / "s.db", HashingEmbedder(64)) as store:
        ingest_paths([folder], store, root=folder, progress=False)
        (folder / "b.md").unlink()
        kept = ingest_paths([folder], store, root=folder, progress=False)
        assert kept.removed == 0 and "b.md" in store.sources()  # without prune nothing goes
        pruned = ingest_paths([folder], store, root=folder, progress=False, prune=True)
        assert pruned.removed == 1
        assert sorted(store.sources()) == ["a.md", "c.md"]
        assert all(c.source != "b.md" for c in store.search("text", k=10, mode="bm25"))
