"""The store boundary: what every chunk store (embedded SQLite, Weaviate) provides.

A store owns an embedder: `upsert` embeds each chunk's *contextual text* (`embed_text`: its
document title and heading path, then its text) in batches, and indexes that context for BM25
beside the text (a second field, weighted: BM25F); `search` embeds the query for vector and
hybrid modes. Hybrid fusion is implemented once here so both stores rank alike: Weaviate's
relativeScoreFusion (min-max normalise each leg, weight vector by `alpha` and BM25 by
`1 - alpha`, sum), weighted reciprocal-rank fusion, or the same relative fusion over each
document's best chunk (`fuse`). `SearchOptions` holds the shipped defaults (measured in
benchmarks/retrieval_bench.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import PurePosixPath
from typing import Any, Literal, Protocol, runtime_checkable

from ragloom.core.documents import Chunk
from ragloom.core.errors import ConfigError
from ragloom.core.text import clean_markup, query_terms
from ragloom.core.text import tokenize as tokenize  # the one BM25 tokenizer (re-exported)

SearchMode = Literal["bm25", "vector", "hybrid"]
SEARCH_MODES: tuple[SearchMode, ...] = ("bm25", "vector", "hybrid")
Fusion = Literal["relative", "rrf", "document"]
FUSIONS: tuple[Fusion, ...] = ("relative", "rrf", "document")


@dataclass(frozen=True)
class SearchOptions:
    """How a store ranks, beyond the per-call mode/alpha/k (defaults: the measured best).

    - `fusion`: `relative` (Weaviate's relativeScoreFusion over chunks), `rrf` (weighted
      reciprocal rank, k=60) or `document` (relative fusion of each document's best chunk score,
      chunks then ranked by their document)
    - `candidates`: chunks fetched per leg before fusing
    - `stopwords`: drop stop words from BM25 queries ("how do I copy a file" -> copy, file)
    - `context_weight`: BM25F weight of the title/heading field (the text field weighs 1)
    """

    fusion: Fusion = "relative"
    candidates: int = 200
    stopwords: bool = False
    context_weight: float = 1.0

    def query_terms(self, query: str) -> list[str]:
        """The BM25 terms of a query under these options (each once)."""
        return query_terms(query) if self.stopwords else list(dict.fromkeys(tokenize(query)))


@dataclass(frozen=True)
class Filters:
    """Metadata filters; every given field must match (AND). Empty means no filter.

    - `sources`: chunk source equals one of these
    - `path_prefix`: chunk source starts with this
    - `tags`: chunk metadata `tags` contains all of these
    - `modified_after` / `modified_before`: chunk metadata `modified` (ISO date) in range
    """

    sources: tuple[str, ...] = ()
    path_prefix: str | None = None
    tags: tuple[str, ...] = ()
    modified_after: date | None = None
    modified_before: date | None = None

    @property
    def empty(self) -> bool:
        return not (
            self.sources or self.path_prefix or self.tags
            or self.modified_after or self.modified_before
        )

    @classmethod
    def parse(cls, text: str) -> Filters:
        """Parse the small filter language: space-separated `key:value` terms.

        Keys: `source:` (repeatable), `path:` (prefix), `tag:` (repeatable), `after:`/`before:`
        (YYYY-MM-DD). Example: `path:library/ tag:stdlib after:2024-01-01`.
        """
        sources: list[str] = []
        tags: list[str] = []
        values: dict[str, Any] = {}
        for term in text.split():
            key, sep, value = term.partition(":")
            if not sep or not value:
                raise ConfigError(
                    f"bad filter term {term!r}", setting="filters",
                    fix="use key:value with key in source, path, tag, after, before",
                )
            if key == "source":
                sources.append(value)
            elif key == "tag":
                tags.append(value)
            elif key == "path":
                values["path_prefix"] = value
            elif key in ("after", "before"):
                try:
                    values[f"modified_{key}"] = date.fromisoformat(value)
                except ValueError as exc:
                    raise ConfigError(
                        f"bad date in filter term {term!r}", setting="filters", fix="use YYYY-MM-DD"
                    ) from exc
            else:
                raise ConfigError(
                    f"unknown filter key {key!r}", setting="filters",
                    fix="use one of source, path, tag, after, before",
                )
        return cls(sources=tuple(sources), tags=tuple(tags), **values)

    def matches(self, chunk: Chunk) -> bool:
        """Whether a chunk passes these filters (the reference semantics for every store)."""
        if self.sources and chunk.source not in self.sources:
            return False
        if self.path_prefix and not chunk.source.startswith(self.path_prefix):
            return False
        if self.tags:
            have = set(chunk.metadata.get("tags") or ())
            if not set(self.tags) <= have:
                return False
        if self.modified_after or self.modified_before:
            modified = _as_date(chunk.metadata.get("modified"))
            if modified is None:
                return False
            if self.modified_after and modified < self.modified_after:
                return False
            if self.modified_before and modified > self.modified_before:
                return False
        return True


def _as_date(value: object) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value).date()
        except ValueError:
            return None
    return None


@runtime_checkable
class ChunkStore(Protocol):
    """A store of chunks with BM25, vector and hybrid search."""

    def upsert(self, chunks: Sequence[Chunk], *, tenant: str | None = None) -> int:
        """Insert or replace chunks by id (embedding their text); returns how many were written."""
        ...

    def replace_source(
        self, source: str, content_hash: str, chunks: Sequence[Chunk], *, tenant: str | None = None
    ) -> int:
        """Atomically swap all chunks of `source` for `chunks` and record its content hash."""
        ...

    def delete(self, source: str, *, tenant: str | None = None) -> int:
        """Remove every chunk of `source`; returns how many were removed."""
        ...

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        mode: SearchMode = "hybrid",
        alpha: float = 0.5,
        filters: Filters | None = None,
        tenant: str | None = None,
    ) -> list[Chunk]:
        """Best `k` chunks for `query`, best first, each with `score` set."""
        ...

    def get(self, chunk_ids: Sequence[str], *, tenant: str | None = None) -> list[Chunk]:
        """Chunks by id, in the order asked (missing ids are left out)."""
        ...

    def get_source(self, source: str, *, tenant: str | None = None) -> list[Chunk]:
        """All chunks of one source, in document order."""
        ...

    def count(self, *, tenant: str | None = None) -> int:
        """Number of chunks."""
        ...

    def sources(self, *, tenant: str | None = None) -> dict[str, str]:
        """Every ingested source with its content hash."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def chunk_context(chunk: Chunk) -> str:
    """What a chunk is about beyond its text: its document title and heading path, markup
    stripped, e.g. "shutil --- High-level file operations > Directory and files operations".

    A title that is only the file name (the loaders' fallback when a file has none) is left out:
    it is a path, not a title."""
    title = clean_markup(chunk.title) if chunk.title else ""
    if title and title == PurePosixPath(chunk.source).stem:
        title = ""
    path = [clean_markup(h) for h in chunk.heading_path if h.strip()]
    if path and title and path[0] == title:
        path = path[1:]
    return " > ".join(p for p in [title, *path] if p)


def embed_text(chunk: Chunk) -> str:
    """The text a store embeds for a chunk: its context line, then its text."""
    context = chunk_context(chunk)
    return f"{context}\n\n{chunk.text}" if context else chunk.text


def min_max(scores: Sequence[float]) -> list[float]:
    """Min-max normalise to [0, 1]; a single (or all-equal) score normalises to 1."""
    if not scores:
        return []
    lo, hi = min(scores), max(scores)
    if hi == lo:
        return [1.0 for _ in scores]
    return [(s - lo) / (hi - lo) for s in scores]


def relative_score_fusion(
    bm25: Iterable[tuple[str, float]],
    vector: Iterable[tuple[str, float]],
    alpha: float,
) -> list[tuple[str, float]]:
    """Weaviate's relativeScoreFusion: alpha * norm(vector) + (1 - alpha) * norm(bm25).

    Each leg is a ranked list of (id, raw score). Ids missing from a leg get 0 from it.
    Returns (id, fused score) best first; ties break by id for determinism.
    """
    fused: dict[str, float] = {}
    for leg, weight in ((list(bm25), 1.0 - alpha), (list(vector), alpha)):
        for (chunk_id, _), norm in zip(leg, min_max([s for _, s in leg]), strict=True):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight * norm
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))



def reciprocal_rank_fusion(
    bm25: Iterable[tuple[str, float]],
    vector: Iterable[tuple[str, float]],
    alpha: float,
    k: int = 60,
) -> list[tuple[str, float]]:
    """Weighted RRF: alpha / (k + rank in vector) + (1 - alpha) / (k + rank in bm25), scaled so
    a first place in both legs scores 1. Ties break by id."""
    fused: dict[str, float] = {}
    for leg, weight in ((list(bm25), 1.0 - alpha), (list(vector), alpha)):
        for rank, (chunk_id, _) in enumerate(leg, 1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight * (k + 1) / (k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def document_fusion(
    bm25: Iterable[tuple[str, float]],
    vector: Iterable[tuple[str, float]],
    alpha: float,
    source_of: dict[str, str],
) -> list[tuple[str, float]]:
    """Relative-score fusion of documents (each scored by its best chunk per leg); a chunk
    scores its document's fused score plus a hundredth of its own fused score, so chunks of
    the best document come first, best chunk first."""
    legs = [list(bm25), list(vector)]
    chunk_fused = dict(relative_score_fusion(legs[0], legs[1], alpha))
    doc_fused: dict[str, float] = {}
    for leg, weight in ((legs[0], 1.0 - alpha), (legs[1], alpha)):
        best: dict[str, float] = {}
        for chunk_id, score in leg:
            source = source_of.get(chunk_id, chunk_id)
            best[source] = max(best.get(source, score), score)
        names = list(best)
        for source, norm in zip(names, min_max([best[n] for n in names]), strict=True):
            doc_fused[source] = doc_fused.get(source, 0.0) + weight * norm
    scored = {
        chunk_id: doc_fused.get(source_of.get(chunk_id, chunk_id), 0.0) + 0.01 * own
        for chunk_id, own in chunk_fused.items()
    }
    return sorted(scored.items(), key=lambda item: (-item[1], item[0]))


def fuse(
    method: Fusion,
    bm25: Sequence[tuple[str, float]],
    vector: Sequence[tuple[str, float]],
    alpha: float,
    source_of: dict[str, str] | None = None,
) -> list[tuple[str, float]]:
    """Fuse the two legs with `method` (see `SearchOptions.fusion`)."""
    if method == "relative":
        return relative_score_fusion(bm25, vector, alpha)
    if method == "rrf":
        return reciprocal_rank_fusion(bm25, vector, alpha)
    if method == "document":
        return document_fusion(bm25, vector, alpha, source_of or {})
    raise ConfigError(f"unknown fusion {method!r}", setting="retrieval.fusion",
                      fix="use relative, rrf or document")
