"""Bad inputs (issue 13, suite part 4, ingest side): every bad file on disk gives exactly one
typed failure line, and every good file beside it is ingested. Nothing hangs or crashes."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragloom.core.testing import HashingEmbedder
from ragloom.tools.ingest import ingest_paths
from ragloom.tools.ingest.loaders import MAX_FILE_BYTES
from ragloom.tools.stores.embedded import EmbeddedStore
from tests.tools.bad_files import deny_reading, encrypted_pdf, nested_html
from tests.tools.helpers import make_pdf

GOOD = {
    "good/a.md": "# Alpha\n\nAlpha text about otters.\n",
    "good/b.txt": "Beavers build dams across rivers.\n",
    "good/c.html": "<html><body><h1>Cranes</h1><p>Cranes dance.</p></body></html>",
    "good/d.pdf": make_pdf(["Dippers walk under water."], title="Dippers"),
    "good/e.rst": "Eels\n====\n\nEels migrate to the sea.\n",
    # malformed but recoverable HTML: unclosed tags, stray closers, bad entities
    "good/sloppy.html": "<html><body><h1>Sloppy<p>Unclosed <b>bold <i>text</div></span>&bogus;",
    # a folder named like a document is a folder: its files go in
    "good/folder.md/inside.md": "# Inside\n\nA file inside a folder named folder.md.\n",
    # names that look like console markup
    "good/[b]bold[i].md": "# Bracketed\n\nBrackets in a file name.\n",
    "good/[/x]good.md": "# Closing\n\nA closing tag in a folder name.\n",
}

# name -> (content or a maker, expected failure code)
BAD: dict[str, tuple[object, str]] = {
    "bad/empty.md": (b"", "empty_file"),
    "bad/binary.txt": (bytes(range(256)) * 4, "decode_error"),
    "bad/invalid-utf8.md": ("r\u00e9sum\u00e9 na\u00efve".encode("latin-1"), "decode_error"),
    "bad/no-markup.html": ("just words, no tags", "parse_error"),
    "bad/deep.html": (nested_html(10_000), "parse_error"),
    "bad/broken.pdf": (b"%PDF-1.7\n1 0 obj << /Type /Catalog", "parse_error"),
    "bad/encrypted.pdf": (encrypted_pdf(), "parse_error"),
    "bad/zero.pdf": (b"", "empty_file"),
    "bad/huge.txt": ("sparse", "file_too_large"),
    "bad/fifo.md": ("fifo", "unsupported_file"),
    "bad/socket.md": ("socket", "unsupported_file"),
    "bad/device.txt": ("device", "unsupported_file"),
    "bad/loop.md": ("self-link", "ingest"),
    "bad/dangling.md": ("dangling", "ingest"),
    "bad/unreadable.md": ("unreadable", "ingest"),
    "bad/[bold]oops[/].txt": (b"\x00\x00\x00", "decode_error"),
    "bad/image.png": (b"\x89PNG\r\n\x1a\n", "unsupported_file"),
    "bad/dirloop/": ("dir-link", "ingest"),
}


@pytest.fixture
def corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "corpus"
    for name, content in GOOD.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    sockets = []
    for name, (content, _) in BAD.items():
        path = root / name.rstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content == "sparse":
            with open(path, "wb") as handle:
                handle.truncate(MAX_FILE_BYTES * 2 + 1)  # a 40 MB text file, no disk used
        elif content == "fifo":
            os.mkfifo(path)
        elif content == "socket":
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(str(path))
            sockets.append(sock)
        elif content == "device":
            path.symlink_to("/dev/zero")
        elif content == "self-link":
            path.symlink_to(path)
        elif content == "dangling":
            path.symlink_to(path.parent / "gone.md")
        elif content == "dir-link":
            path.symlink_to("..")
        elif content == "unreadable":
            path.write_text("# Secret\n\nUnreadable.\n")
            deny_reading(path, monkeypatch)
        else:
            path.write_text(str(content))
    yield root
    for sock in sockets:
        sock.close()
    (root / "bad" / "unreadable.md").chmod(0o644)


@pytest.mark.timeout(120)
def test_each_bad_input_gives_one_typed_failure_and_the_rest_go_in(
    corpus: Path, tmp_path: Path
) -> None:
    with EmbeddedStore(tmp_path / "s.db", HashingEmbedder(64)) as store:
        report = ingest_paths([corpus], store, root=corpus, progress=True)
        codes = {f.source: f.code for f in report.failed}
        assert len(report.failed) == len(codes) == len(BAD)  # one line each
        assert codes == {name: code for name, (_, code) in BAD.items()}
        assert all(f.reason for f in report.failed)
        assert set(store.sources()) == set(GOOD)
        assert report.ingested == len(GOOD) and report.exit_code == 2
        sloppy = store.get_source("good/sloppy.html")
        assert "Unclosed bold text" in " ".join(c.text for c in sloppy)


@pytest.mark.timeout(60)
def test_a_fifo_given_directly_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.md")
    (tmp_path / "after.md").write_text("# After\n\nIngested after the FIFO.\n")
    with EmbeddedStore(tmp_path / "s.db", HashingEmbedder(64)) as store:
        report = ingest_paths(["fifo.md", "after.md"], store, progress=False)
    assert [(f.source, f.code) for f in report.failed] == [("fifo.md", "unsupported_file")]
    assert "named pipe" in report.failed[0].reason
    assert report.ingested == 1


def test_reasons_are_specific(corpus: Path, tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "s.db", HashingEmbedder(64)) as store:
        report = ingest_paths([corpus / "bad"], store, root=corpus, progress=False)
    reasons = {f.source: f.reason for f in report.failed}
    assert "permission denied" in reasons["bad/unreadable.md"]
    assert "symlink loop" in reasons["bad/loop.md"]
    assert "broken symlink" in reasons["bad/dangling.md"]
    assert "socket" in reasons["bad/socket.md"]
    assert "character device" in reasons["bad/device.txt"]
    assert "encrypted" in reasons["bad/encrypted.pdf"]
    assert "nests deeper" in reasons["bad/deep.html"]
    assert "limit" in reasons["bad/huge.txt"]
    assert report.exit_code == 2  # bad/dirloop -> .. reaches the good files once


def test_nothing_ingested_is_exit_status_1(corpus: Path, tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "s.db", HashingEmbedder(64)) as store:
        report = ingest_paths(
            [corpus / "bad" / "fifo.md", corpus / "bad" / "empty.md"], store, progress=False
        )
    assert len(report.failed) == 2 and report.ingested == 0 and report.exit_code == 1
