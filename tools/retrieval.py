"""Retrieval over a chunk store for code and for the ecosystem's doors.

- `Retriever`: a store plus default search settings (what the CLI's `search` uses).
- `StoreRetriever`: a LangChain `BaseRetriever` (chains, agents, `.as_tool()`).
- `DSPyRetriever`: a DSPy retrieval model (passages for a `dspy.Module` or `dspy.Retrieve`).

Every result carries what a citation needs: chunk id, source, heading path, score and text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from ragloom.core.documents import Chunk
from ragloom.core.errors import ConfigError
from ragloom.core.text import clean_query
from ragloom.tools.stores.base import SEARCH_MODES, ChunkStore, Filters, SearchMode

log = structlog.get_logger(__name__)


class Retriever:
    """A store plus default search settings (mode, alpha, k, tenant)."""

    def __init__(
        self,
        store: ChunkStore,
        *,
        mode: SearchMode = "hybrid",
        alpha: float = 0.5,
        k: int = 6,
        tenant: str | None = None,
    ) -> None:
        if mode not in SEARCH_MODES:
            raise ConfigError(f"unknown search mode {mode!r}", setting="retrieval.mode",
                              fix="use bm25, vector or hybrid")
        self.store = store
        self.mode: SearchMode = mode
        self.alpha = alpha
        self.k = k
        self.tenant = tenant

    def search(
        self,
        query: str,
        *,
        k: int | None = None,
        mode: SearchMode | None = None,
        alpha: float | None = None,
        filters: Filters | str | None = None,
    ) -> list[Chunk]:
        """Best chunks for `query`; arguments left out use the retriever's defaults.

        `filters` is a `Filters` or the filter language (`path:library/ tag:x`). Both texts
        are cleaned first (`clean_query`: no control characters, no bytes that are not UTF-8).
        """
        if isinstance(filters, str):
            filters = clean_query(filters)
            filters = Filters.parse(filters) if filters else None
        return self.store.search(
            clean_query(query),
            k=k or self.k,
            mode=mode or self.mode,
            alpha=self.alpha if alpha is None else alpha,
            filters=filters,
            tenant=self.tenant,
        )

    def get_document(self, source: str) -> list[Chunk]:
        """All chunks of one source, in order."""
        return self.store.get_source(source, tenant=self.tenant)

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """Chunks by id."""
        return self.store.get(chunk_ids, tenant=self.tenant)


def chunk_result(chunk: Chunk, *, max_chars: int | None = None) -> dict[str, Any]:
    """The citation-ready view of a chunk that tools return."""
    text = chunk.text if max_chars is None else chunk.text[:max_chars]
    return {
        "chunk_id": chunk.id,
        "source": chunk.source,
        "heading_path": list(chunk.heading_path),
        "score": None if chunk.score is None else round(float(chunk.score), 6),
        "text": text,
    }


class StoreRetriever(BaseRetriever):
    """A LangChain retriever over any ragloom store, for LangChain chains and agents.

    Documents carry the citation fields in `metadata` (`chunk_id`, `source`, `heading_path`,
    `score`, `title`). `retriever.as_tool(...)` makes an agent tool of it.

        retriever = StoreRetriever(store=wiring.store, k=4, mode="hybrid")
        docs = retriever.invoke("How do I write an octal literal?")
    """

    store: Any
    k: int = 6
    mode: SearchMode = "hybrid"
    alpha: float = 0.5
    tenant: str | None = None
    filters: str = ""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        retriever = Retriever(self.store, mode=self.mode, alpha=self.alpha, k=self.k,
                              tenant=self.tenant)  # fmt: skip
        chunks = retriever.search(query, filters=self.filters or None)
        return [_document(chunk) for chunk in chunks]


def _document(chunk: Chunk) -> Document:
    meta = chunk_result(chunk)
    text = meta.pop("text")
    return Document(page_content=text, id=chunk.id, metadata={**meta, "title": chunk.title})


@dataclass(frozen=True)
class Passage:
    """One retrieved passage as DSPy's `Retrieve` reads it (`long_text`), with its citation."""

    long_text: str
    chunk_id: str
    source: str
    score: float | None


class DSPyRetriever:
    """A DSPy retrieval model over any ragloom store: call it for passages, use it inside a
    `dspy.Module`, or `dspy.configure(rm=DSPyRetriever(store))` for `dspy.Retrieve`."""

    def __init__(self, store: ChunkStore, *, k: int = 6, mode: SearchMode = "hybrid",
                 alpha: float = 0.5, tenant: str | None = None) -> None:  # fmt: skip
        self.retriever = Retriever(store, mode=mode, alpha=alpha, k=k, tenant=tenant)

    def __call__(self, query: str, k: int | None = None, **_: Any) -> list[Passage]:
        return [
            Passage(long_text=c.text, chunk_id=c.id, source=c.source, score=c.score)
            for c in self.retriever.search(query, k=k)
        ]
