"""Loaders: each format gives text, title and heading paths; failures are typed IngestErrors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ragloom.core.errors import (
    DecodeError,
    EmptyFileError,
    FileTooLargeError,
    IngestError,
    ParseError,
    UnsupportedFileError,
)
from ragloom.tools.ingest import load_document, split_document
from tests.tools.bad_files import deny_reading, encrypted_pdf, nested_html
from tests.tools.helpers import make_pdf

RST = """\
=============
Guide to Pots
=============

Intro paragraph about pots.

Clay pots
=========

Clay pots breathe.

Glazing
-------

Glaze seals the clay.

Metal pots
==========

Metal pots conduct heat.
"""

MD = """\
# Cooking

Some intro.

## Sauces

Whisk the butter.

```python
# not a heading
x = 1
```

### Emulsions

Keep it warm.

## Breads

Knead well.
"""

HTML = """\
<html><head><title>Bird Guide</title><style>p {color: red}</style></head>
<body>
<h1>Birds</h1>
<p>Birds have <b>feathers</b>.</p>
<script>var hidden = "do not index";</script>
<h2>Owls</h2>
<p>Owls hunt at night.</p>
<h3>Barn owls</h3>
<p>Barn owls screech.</p>
<h2>Ducks</h2>
<ul><li>Mallards</li><li>Teals</li></ul>
</body></html>
"""


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _path_at(doc, needle: str) -> tuple[str, ...]:
    """The heading path in force where `needle` occurs."""
    offset = doc.text.index(needle)
    current: tuple[str, ...] = ()
    for start, path in doc.headings:
        if start <= offset:
            current = path
    return current


def test_rst_headings_follow_adornment_order(tmp_path: Path) -> None:
    doc = load_document(_write(tmp_path, "pots.rst", RST), source="guide/pots.rst")
    assert doc.source == "guide/pots.rst"
    assert doc.title == "Guide to Pots"
    assert [p for _, p in doc.headings] == [
        ("Guide to Pots",),
        ("Guide to Pots", "Clay pots"),
        ("Guide to Pots", "Clay pots", "Glazing"),
        ("Guide to Pots", "Metal pots"),
    ]
    assert _path_at(doc, "Glaze seals") == ("Guide to Pots", "Clay pots", "Glazing")
    assert _path_at(doc, "conduct heat") == ("Guide to Pots", "Metal pots")
    assert doc.metadata["format"] == "rst"
    assert doc.metadata["content_hash"] == doc.content_hash
    assert doc.metadata["modified"][:4].isdigit()


def test_markdown_headings_skip_fenced_code(tmp_path: Path) -> None:
    doc = load_document(_write(tmp_path, "cook.md", MD))
    assert doc.title == "Cooking"
    assert [p for _, p in doc.headings] == [
        ("Cooking",),
        ("Cooking", "Sauces"),
        ("Cooking", "Sauces", "Emulsions"),
        ("Cooking", "Breads"),
    ]
    assert "# not a heading" in doc.text


def test_html_keeps_headings_and_drops_scripts(tmp_path: Path) -> None:
    doc = load_document(_write(tmp_path, "birds.html", HTML))
    assert doc.title == "Bird Guide"
    assert "do not index" not in doc.text
    assert "color: red" not in doc.text
    assert "Birds have feathers." in doc.text
    assert [p for _, p in doc.headings] == [
        ("Birds",), ("Birds", "Owls"), ("Birds", "Owls", "Barn owls"), ("Birds", "Ducks"),
    ]
    assert _path_at(doc, "Barn owls screech") == ("Birds", "Owls", "Barn owls")
    assert "Mallards\nTeals" in doc.text
    for start, path in doc.headings:  # each heading offset points at the heading text
        assert doc.text[start:].startswith(path[-1])


def test_txt_has_no_headings_and_title_from_name(tmp_path: Path) -> None:
    doc = load_document(_write(tmp_path, "notes.txt", "line one\r\nline two\r\n"))
    assert doc.title == "notes"
    assert doc.headings == ()
    assert doc.text == "line one\nline two\n"


def test_pdf_text_and_title(tmp_path: Path) -> None:
    pdf = make_pdf(["Volcanoes erupt lava.", "Ash clouds travel far."], title="Volcano Notes")
    doc = load_document(_write(tmp_path, "v.pdf", pdf))
    assert doc.title == "Volcano Notes"
    assert "Volcanoes erupt lava." in doc.text and "Ash clouds travel far." in doc.text
    assert doc.metadata["format"] == "pdf"


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("a.docx", "text", UnsupportedFileError),
        ("noext", "text", UnsupportedFileError),
        ("empty.txt", "", EmptyFileError),
        ("blank.md", "  \n\t\n", EmptyFileError),
        ("bin.txt", b"abc\x00\x01\x02def", DecodeError),
        ("latin.txt", "caf\u00e9".encode("latin-1"), DecodeError),
        ("plain.html", "no markup at all here", ParseError),
        ("bad.pdf", b"%PDF-1.4 this is not really a pdf", ParseError),
        ("scripts.html", "<html><script>x = 1</script></html>", EmptyFileError),
    ],
)
def test_bad_files_raise_typed_errors(
    tmp_path: Path, name: str, content: str | bytes, error: type[IngestError]
) -> None:
    with pytest.raises(error) as info:
        load_document(_write(tmp_path, name, content))
    assert info.value.path and info.value.path.endswith(name)


def test_size_limit_and_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = _write(tmp_path, "big.txt", "word " * 1000)
    with pytest.raises(FileTooLargeError):
        load_document(big, max_bytes=100)
    deny_reading(big, monkeypatch)
    with pytest.raises(IngestError, match="permission denied") as info:
        load_document(big)
    assert info.value.code == "ingest" and info.value.path == big.as_posix()


def test_only_regular_files_are_opened(tmp_path: Path) -> None:
    """A FIFO named like a document is refused at once (open() would block forever); so are
    devices, directories and sockets reached through a name with a supported suffix."""
    import socket

    fifo = tmp_path / "fifo.md"
    os.mkfifo(fifo)
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    (tmp_path / "folder.md").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "s.md"))
    try:
        for name, kind in [
            ("fifo.md", "named pipe"), ("zero.txt", "character device"),
            ("folder.md", "directory"), ("s.md", "socket"),
        ]:
            with pytest.raises(UnsupportedFileError, match=kind) as info:
                load_document(tmp_path / name)
            assert info.value.code == "unsupported_file"
    finally:
        sock.close()


def test_broken_links_and_link_loops_name_the_problem(tmp_path: Path) -> None:
    (tmp_path / "dangling.md").symlink_to(tmp_path / "gone.md")
    (tmp_path / "loop.md").symlink_to(tmp_path / "loop.md")
    with pytest.raises(IngestError, match="broken symlink"):
        load_document(tmp_path / "dangling.md")
    with pytest.raises(IngestError, match="symlink loop"):
        load_document(tmp_path / "loop.md")
    (tmp_path / "real.md").write_text("# Real\n\nText.\n")
    (tmp_path / "link.md").symlink_to(tmp_path / "real.md")
    assert load_document(tmp_path / "link.md").title == "Real"  # a link to a file is fine


def test_html_navigation_is_not_indexed_and_headings_read_like_the_body(tmp_path: Path) -> None:
    page = """<html><head><title>6.2. <code>apt</code>, <code>dpkg</code> Commands</title></head>
<body><nav><a href="/">Home</a> Site menu</nav>
<ul class="docnav top"><li><a href="prev.html">Prev</a></li><li>The Handbook</li></ul>
<div role="navigation">Breadcrumb trail</div>
<h1>6.2. <code>apt</code>, <code>dpkg</code> Commands</h1>
<p>Use <code>apt</code>, then <code>dpkg</code>.</p>
<h2>First<br>steps</h2><p>Update the lists.</p>
<footer role="contentinfo">Copyright notice</footer>
</body></html>"""
    doc = load_document(_write(tmp_path, "apt.html", page))
    for chrome in ("Site menu", "Prev", "The Handbook", "Breadcrumb", "Copyright"):
        assert chrome not in doc.text
    assert "Use apt, then dpkg." in doc.text
    assert doc.title == "6.2. apt, dpkg Commands"
    assert [p for _, p in doc.headings] == [
        ("6.2. apt, dpkg Commands",), ("6.2. apt, dpkg Commands", "First steps"),
    ]
    for start, path in doc.headings:
        assert doc.text[start:].startswith(path[-1])


def test_deep_html_is_a_parse_error_and_moderate_depth_parses(tmp_path: Path) -> None:
    from ragloom.tools.ingest.loaders import MAX_HTML_DEPTH

    with pytest.raises(ParseError, match="nests deeper") as info:
        load_document(_write(tmp_path, "deep.html", nested_html(10_000)))
    assert info.value.code == "parse_error"
    doc = load_document(_write(tmp_path, "ok.html", nested_html(MAX_HTML_DEPTH - 10)))
    assert doc.text.strip() == "deep text"  # past Python's recursion limit, below ours


def test_encrypted_and_zero_byte_pdfs(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="encrypted"):
        load_document(_write(tmp_path, "locked.pdf", encrypted_pdf()))
    with pytest.raises(EmptyFileError):
        load_document(_write(tmp_path, "zero.pdf", b""))


@pytest.mark.parametrize(
    ("name", "content"),
    [("pots.rst", RST), ("cook.md", MD), ("birds.html", HTML), ("t.txt", "alpha beta. " * 400)],
)
def test_chunk_spans_point_into_the_document(tmp_path: Path, name: str, content: str) -> None:
    doc = load_document(_write(tmp_path, name, content))
    chunks = split_document(doc, chunk_tokens=40, overlap=8)
    assert chunks
    for position, chunk in enumerate(chunks):
        assert doc.text[chunk.start:chunk.end] == chunk.text
        assert chunk.position == position
        assert chunk.source == doc.source and chunk.title == doc.title
        assert chunk.metadata["content_hash"] == doc.content_hash
        assert chunk.metadata["modified"] == doc.metadata["modified"]


def test_parse_text_reads_in_memory_text_like_the_loader(tmp_path: Path) -> None:
    from ragloom.tools.ingest.loaders import parse_text

    text = "Title\n=====\n\nIntro.\n\nPart\n----\n\nBody.\n"
    (tmp_path / "page.rst").write_text(text)
    loaded = load_document(tmp_path / "page.rst", source="page.rst")
    parsed = parse_text(text, "page.rst")
    assert (parsed.title, parsed.headings) == (loaded.title, loaded.headings)
    assert parse_text("# Notes\n\nHello.\n", "notes").title == "Notes"  # no suffix: Markdown
