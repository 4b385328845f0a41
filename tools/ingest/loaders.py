"""Load one file into a `Document`: its text, title and where each section heading starts.

Formats: plain text (.txt), Markdown (.md), reStructuredText (.rst), HTML (.html/.htm, parsed with
BeautifulSoup's html.parser, h1-h6 kept as headings) and PDF (pypdf). Every failure is a typed
`IngestError` naming the file, so the pipeline can report it and go on.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ragloom.core.documents import Document
from ragloom.core.errors import (
    DecodeError,
    EmptyFileError,
    FileTooLargeError,
    IngestError,
    ParseError,
    UnsupportedFileError,
)

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_HTML_DEPTH = 2000  # elements open at once; deeper markup is a parse_error
TEXT_SUFFIXES = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown",
                 ".rst": "rst", ".html": "html", ".htm": "html", ".pdf": "pdf"}
SUPPORTED_SUFFIXES = frozenset(TEXT_SUFFIXES)

Headings = tuple[tuple[int, tuple[str, ...]], ...]


def load_document(
    path: str | Path, *, source: str | None = None, max_bytes: int = MAX_FILE_BYTES
) -> Document:
    """Read `path` into a Document; `source` names it (default: the path, POSIX style).

    Raises an `IngestError` subclass for unsupported, empty, undecodable, oversized or malformed
    files, for anything that is not a regular file (FIFO, socket, device, directory), and for
    files that cannot be read. `metadata["path"]` is the absolute path read.
    """
    path = Path(path)
    name = source or path.as_posix()
    kind = TEXT_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UnsupportedFileError(f"unsupported file type {path.suffix or '(none)'!r}", path=name)
    raw = _read_bytes(path, name, max_bytes)
    if not raw.strip():
        raise EmptyFileError("file is empty" if not raw else "file has only whitespace", path=name)
    try:
        if kind == "pdf":
            text, title, headings = _parse_pdf(raw, name)
        else:
            text = _decode(raw, name)
            text, title, headings = _PARSERS[kind](text, name)
    except RecursionError as exc:  # a parser recursed on pathological nesting
        raise ParseError("document nests too deeply to parse", path=name) from exc
    if not text.strip():
        raise EmptyFileError("no text left after parsing", path=name)
    metadata = {
        "format": kind,
        "modified": _modified(path),
        "content_hash": Document(source=name, text=text).content_hash,
        "bytes": len(raw),
        "path": os.path.abspath(path),
    }
    return Document(
        source=name, text=text, title=title or path.stem, headings=headings, metadata=metadata
    )


def parse_text(text: str, source: str) -> Document:
    """A Document from in-memory text, parsed by `source`'s suffix as the loader would (title and
    headings); text without a known suffix is read as Markdown."""
    kind = TEXT_SUFFIXES.get(Path(source).suffix.lower())
    parse = _PARSERS.get(kind or "markdown", _parse_markdown)
    text, title, headings = parse(text, source)
    return Document(source=source, text=text, title=title or Path(source).stem, headings=headings)


def _read_bytes(path: Path, name: str, max_bytes: int) -> bytes:
    """The file's bytes; only regular files (and symlinks to them) are opened.

    A FIFO, socket or device is refused before `open` (which would block on a FIFO) and again
    after it (`O_NONBLOCK` open, then `fstat`), so a file swapped for a pipe in between is caught.
    """
    try:
        info = os.stat(path)
        _require_regular(info.st_mode, name)
        if info.st_size > max_bytes:
            raise FileTooLargeError(
                f"file has {info.st_size} bytes, limit is {max_bytes}", path=name
            )
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as handle:
            _require_regular(os.fstat(handle.fileno()).st_mode, name)
            raw = handle.read(max_bytes + 1)
    except IngestError:
        raise
    except PermissionError as exc:
        raise IngestError("cannot read file: permission denied", path=name) from exc
    except FileNotFoundError as exc:
        reason = "broken symlink (its target is missing)" if path.is_symlink() else "no such file"
        raise IngestError(reason, path=name) from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IngestError("symlink loop (too many levels of links)", path=name) from exc
        raise IngestError(f"cannot read file: {exc.strerror or exc}", path=name) from exc
    if len(raw) > max_bytes:
        raise FileTooLargeError(f"file grew past the limit of {max_bytes} bytes", path=name)
    return raw


def _require_regular(mode: int, name: str) -> None:
    if stat.S_ISREG(mode):
        return
    kinds = (
        (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    kind = next((label for test, label in kinds if test(mode)), "an unknown kind of file")
    raise UnsupportedFileError(f"not a regular file: {kind}", path=name)


def _decode(raw: bytes, name: str) -> str:
    if b"\x00" in raw[:8192]:
        raise DecodeError("binary content (NUL bytes) in a text file", path=name)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"not valid UTF-8 at byte {exc.start}", path=name) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _modified(path: Path) -> str:
    try:
        stamp = path.stat().st_mtime
    except OSError:
        return ""
    return datetime.fromtimestamp(stamp, tz=UTC).isoformat(timespec="seconds")


# --- plain text -------------------------------------------------------------------------------


def _parse_text(text: str, name: str) -> tuple[str, str, Headings]:
    return text, "", ()


# --- Markdown ---------------------------------------------------------------------------------

_MD_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def _parse_markdown(text: str, name: str) -> tuple[str, str, Headings]:
    found: list[tuple[int, int, str]] = []
    offset, in_fence = 0, False
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (match := _MD_HEADING.match(line.rstrip("\n"))):
            found.append((offset, len(match.group(1)), match.group(2).strip()))
        offset += len(line)
    return text, _first_title(found), _heading_paths(found)


# --- reStructuredText -------------------------------------------------------------------------

_RST_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+:.<>_!$%&,;?@|/\\])\1{2,}\s*$")


def _parse_rst(text: str, name: str) -> tuple[str, str, Headings]:
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    styles: list[tuple[str, bool]] = []
    found: list[tuple[int, int, str]] = []
    i = 0
    while i < len(lines) - 1:
        heading = _rst_heading_at(lines, i)
        if heading is None:
            i += 1
            continue
        title_index, style, next_index = heading
        if style not in styles:
            styles.append(style)
        start = offsets[i]
        found.append((start, styles.index(style) + 1, lines[title_index].strip()))
        i = next_index
    return text, _first_title(found), _heading_paths(found)


def _rst_heading_at(lines: list[str], i: int) -> tuple[int, tuple[str, bool], int] | None:
    """(title line, (adornment char, overlined), next line) when a section title starts at i."""
    first = lines[i].rstrip("\n")
    over = _RST_ADORNMENT.match(first)
    if over and i + 2 < len(lines):
        title = lines[i + 1].rstrip("\n")
        under = _RST_ADORNMENT.match(lines[i + 2].rstrip("\n"))
        if (
            under and under.group(1) == over.group(1) and title.strip()
            and len(first.rstrip()) >= len(title.rstrip())
        ):
            return i + 1, (over.group(1), True), i + 3
    if not first.strip() or first[0].isspace() or over:
        return None
    under = _RST_ADORNMENT.match(lines[i + 1].rstrip("\n"))
    if under and len(lines[i + 1].rstrip()) >= len(first.rstrip()) and (
        i == 0 or not lines[i - 1].strip()
    ):
        return i, (under.group(1), False), i + 2
    return None


# --- HTML -------------------------------------------------------------------------------------

_BLOCK_TAGS = {
    "p", "div", "section", "article", "li", "ul", "ol", "pre", "table", "tr", "br", "blockquote",
    "h1", "h2", "h3", "h4", "h5", "h6", "header", "footer", "main", "dd", "dt", "dl", "hr",
}
_SKIP_TAGS = {"script", "style", "noscript", "template", "head", "nav"}
# Site chrome, not content: ARIA landmark roles and the class names documentation generators give
# their navigation bars (DocBook/Publican "navheader"/"docnav", breadcrumbs).
_SKIP_ROLES = {"navigation", "search", "banner", "contentinfo"}
_SKIP_CLASSES = {"navheader", "navfooter", "docnav", "breadcrumb", "breadcrumbs"}


def _is_chrome(tag: Any) -> bool:
    """Whether an element is navigation or other site chrome (never indexed)."""
    if tag.name in _SKIP_TAGS or str(tag.get("role") or "").lower() in _SKIP_ROLES:
        return True
    classes = tag.get("class") or ()
    return any(str(c).lower() in _SKIP_CLASSES for c in classes)


def _inline_text(tag: Any) -> str:
    """A heading's text joined as the body joins inline elements ("apt-get, and"), with `<br>`
    as a space and whitespace collapsed."""
    from bs4 import NavigableString

    pieces = [str(node) if type(node) is NavigableString else " "
              for node in tag.descendants
              if type(node) is NavigableString or getattr(node, "name", None) == "br"]
    return " ".join("".join(pieces).split())


def _parse_html(text: str, name: str) -> tuple[str, str, Headings]:
    from bs4 import BeautifulSoup, NavigableString, PageElement, Tag

    if "<" not in text or not re.search(r"<\s*[a-zA-Z!]", text):
        raise ParseError("no HTML markup found", path=name)
    try:
        soup = BeautifulSoup(text, "html.parser")
    except Exception as exc:  # html.parser raises assorted errors on broken markup
        raise ParseError(f"malformed HTML: {exc}", path=name) from exc
    parts: list[str] = []
    found: list[tuple[int, int, str]] = []
    length = 0

    def emit(piece: str) -> None:
        nonlocal length
        parts.append(piece)
        length += len(piece)

    def newline() -> None:
        if parts and not parts[-1].endswith("\n"):
            emit("\n")

    # An explicit stack, not recursion: nesting depth is bounded by `MAX_HTML_DEPTH`, never by
    # Python's recursion limit.
    stack: list[tuple[Iterator[PageElement], Tag | None]] = [(iter(soup.children), None)]
    while stack:
        children, opened = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            if opened is not None and opened.name in _BLOCK_TAGS:
                newline()
            continue
        if isinstance(child, NavigableString):
            if type(child) is NavigableString:
                piece = re.sub(r"\s+", " ", str(child))
                if piece.strip() or (parts and not parts[-1].endswith((" ", "\n"))):
                    emit(piece.lstrip() if not parts or parts[-1].endswith("\n") else piece)
            continue
        if not isinstance(child, Tag) or _is_chrome(child):
            continue
        if child.name in _BLOCK_TAGS:
            newline()
        if re.fullmatch(r"h[1-6]", child.name):
            heading = _inline_text(child)
            if heading:
                found.append((length, int(child.name[1]), heading))
                emit(heading + "\n")
            continue
        if len(stack) > MAX_HTML_DEPTH:
            raise ParseError(
                f"HTML nests deeper than {MAX_HTML_DEPTH} elements (malformed markup?)", path=name
            )
        stack.append((iter(child.children), child))

    body = "".join(parts)
    title_tag = soup.find("title")
    title = _inline_text(title_tag) if title_tag else ""
    return body, title or _first_title(found), _heading_paths(found)


# --- PDF --------------------------------------------------------------------------------------


def _parse_pdf(raw: bytes, name: str) -> tuple[str, str, Headings]:
    import io
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(raw), strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except Exception as exc:  # e.g. AES without a crypto library
                raise ParseError(
                    f"PDF is encrypted and cannot be opened: {type(exc).__name__}: {exc}", path=name
                ) from exc
            if not opened:
                raise ParseError("PDF is encrypted (it needs a password)", path=name)
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata
        title = str(info.get("/Title") or "") if info is not None else ""
    except IngestError:
        raise
    except Exception as exc:  # pypdf raises many types on malformed input
        raise ParseError(f"malformed PDF: {type(exc).__name__}: {exc}", path=name) from exc
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    return text, title.strip(), ()


# --- shared -----------------------------------------------------------------------------------


def _first_title(found: list[tuple[int, int, str]]) -> str:
    if not found:
        return ""
    top = min(level for _, level, _ in found)
    return next(text for _, level, text in found if level == top)


def _heading_paths(found: list[tuple[int, int, str]]) -> Headings:
    """Turn (offset, level, text) headings into (offset, path) pairs, path = enclosing headings."""
    stack: list[tuple[int, str]] = []
    result: list[tuple[int, tuple[str, ...]]] = []
    for offset, level, text in found:
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, text))
        result.append((offset, tuple(t for _, t in stack)))
    return tuple(result)


_PARSERS: dict[str, Callable[[str, str], tuple[str, str, Headings]]] = {
    "text": _parse_text,
    "markdown": _parse_markdown,
    "rst": _parse_rst,
    "html": _parse_html,
}
