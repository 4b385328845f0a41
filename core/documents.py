"""Documents, chunks and citations: the data that flows from ingestion through stores to answers.

These are plain dataclasses with `to_dict` / `from_dict` so graph state (which must stay
JSON-serialisable for checkpointers) can carry them as dicts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


def content_hash(text: str) -> str:
    """Stable hash of a text (sha256, hex, first 16 bytes)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def make_chunk_id(source: str, position: int, text: str) -> str:
    """Deterministic chunk id: hash of source + position + content."""
    digest = hashlib.sha256(f"{source}\x00{position}\x00{text}".encode()).hexdigest()
    return digest[:24]


@dataclass(frozen=True)
class Document:
    """One loaded source file: its full text plus where headings start."""

    source: str
    text: str
    title: str = ""
    # (char offset, heading path) pairs, in order; the path applies from offset onwards.
    headings: tuple[tuple[int, tuple[str, ...]], ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        return content_hash(self.text)


@dataclass
class Chunk:
    """A retrievable piece of a document, with its place in the source."""

    id: str
    source: str
    text: str
    title: str = ""
    heading_path: tuple[str, ...] = ()
    start: int = 0
    end: int = 0
    position: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "text": self.text,
            "title": self.title,
            "heading_path": list(self.heading_path),
            "start": self.start,
            "end": self.end,
            "position": self.position,
            "metadata": dict(self.metadata),
            "score": self.score,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        values = dict(data)
        values["heading_path"] = tuple(values.get("heading_path") or ())
        values.setdefault("metadata", {})
        return cls(**{k: v for k, v in values.items() if k in _CHUNK_FIELDS})

    @property
    def heading(self) -> str:
        """Heading path joined for display, e.g. 'Tutorial > Lists'."""
        return " > ".join(self.heading_path)


_CHUNK_FIELDS = {f for f in Chunk.__dataclass_fields__}


@dataclass(frozen=True)
class Citation:
    """A pointer from an answer to the chunk that supports it, with the quoted span."""

    chunk_id: str
    source: str
    heading_path: tuple[str, ...] = ()
    quote: str = ""
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "source": self.source,
            "heading_path": list(self.heading_path),
            "quote": self.quote,
            "score": self.score,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Citation:
        return cls(
            chunk_id=data["chunk_id"],
            source=data["source"],
            heading_path=tuple(data.get("heading_path") or ()),
            quote=data.get("quote", ""),
            score=data.get("score"),
        )
