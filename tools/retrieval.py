"""Retrieval over a chunk store: a `Retriever` for code, and LangChain tools for agents.

`make_retrieval_tools(store)` returns `search_documents` and `get_document`, typed (pydantic args)
tools whose results carry what a citation needs: chunk id, source, heading path, score and text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import structlog
from pydantic import BaseModel, Field

from ragloom.core.documents import Chunk
from ragloom.core.errors import ConfigError, RagloomError
from ragloom.tools.stores.base import SEARCH_MODES, ChunkStore, Filters, SearchMode

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

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

        `filters` is a `Filters` or the filter language (`path:library/ tag:x`).
        """
        if isinstance(filters, str):
            filters = Filters.parse(filters) if filters.strip() else None
        return self.store.search(
            query,
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


class SearchDocumentsArgs(BaseModel):
    """Arguments of the `search_documents` tool."""

    query: str = Field(description="What to look for, in natural language or keywords.")
    k: int = Field(6, ge=1, le=50, description="How many chunks to return.")
    mode: Literal["bm25", "vector", "hybrid"] = Field(
        "hybrid", description="bm25 (keywords), vector (meaning) or hybrid (both)."
    )
    filters: str = Field(
        "", description="Optional filters, e.g. 'path:library/ tag:stdlib after:2024-01-01'."
    )


class GetDocumentArgs(BaseModel):
    """Arguments of the `get_document` tool: a source path or a chunk id."""

    source: str | None = Field(
        None, description="Source path of a document, e.g. 'library/os.rst'."
    )
    chunk_id: str | None = Field(None, description="Id of a chunk returned by search_documents.")


def make_retrieval_tools(
    store: ChunkStore, tenant: str | None = None, *, alpha: float = 0.5, max_chars: int = 2000
) -> list[BaseTool]:
    """`search_documents` and `get_document` as LangChain tools over `store`."""
    from langchain_core.tools import StructuredTool

    retriever = Retriever(store, tenant=tenant, alpha=alpha)

    def search_documents(
        query: str, k: int = 6, mode: SearchMode = "hybrid", filters: str = ""
    ) -> str:
        try:
            chunks = retriever.search(query, k=k, mode=mode, filters=filters)
        except RagloomError as exc:
            return json.dumps({"error": str(exc)})
        return json.dumps([chunk_result(c, max_chars=max_chars) for c in chunks])

    def get_document(source: str | None = None, chunk_id: str | None = None) -> str:
        if bool(source) == bool(chunk_id):
            return json.dumps({"error": "give exactly one of source or chunk_id"})
        try:
            chunks = (
                retriever.get_document(source) if source else retriever.get_chunks([chunk_id or ""])
            )
        except RagloomError as exc:
            return json.dumps({"error": str(exc)})
        if not chunks:
            return json.dumps({"error": f"not found: {source or chunk_id}"})
        return json.dumps({
            "source": chunks[0].source,
            "title": chunks[0].title,
            "chunks": [chunk_result(c) for c in chunks],
        })

    return [
        StructuredTool.from_function(
            search_documents, name="search_documents", args_schema=SearchDocumentsArgs,
            description="Search the document store. Returns JSON chunks with chunk_id, source, "
                        "heading_path, score and text; cite chunks by chunk_id.",
        ),
        StructuredTool.from_function(
            get_document, name="get_document", args_schema=GetDocumentArgs,
            description="Fetch a whole document by source path, or one chunk by chunk_id. "
                        "Returns JSON.",
        ),
    ]
