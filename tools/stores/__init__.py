"""Chunk stores: the embedded SQLite store (default) and the Weaviate store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragloom.core.errors import ConfigError
from ragloom.tools.stores.base import ChunkStore, Filters, SearchMode, SearchOptions

if TYPE_CHECKING:
    from ragloom.core.embedders import Embedder
    from ragloom.core.settings import Settings

__all__ = ["ChunkStore", "Filters", "SearchMode", "SearchOptions", "build_store", "search_options"]


def search_options(settings: Settings) -> SearchOptions:
    """The store ranking options named by `settings.retrieval`."""
    r = settings.retrieval
    return SearchOptions(fusion=r.fusion, candidates=r.candidates, stopwords=r.stopwords,
                         context_weight=r.context_weight)


def build_store(settings: Settings, embedder: Embedder | None = None) -> ChunkStore:
    """The store named by `settings.store.kind`, with `embedder` (default: from settings)."""
    if embedder is None:
        from ragloom.core.embedders import build_embedder

        embedder = build_embedder(settings)
    kind = settings.store.kind
    if kind == "embedded":
        from ragloom.tools.stores.embedded import EmbeddedStore

        return EmbeddedStore(settings.store.path, embedder, ann=settings.store.ann,
                             options=search_options(settings))
    if kind == "weaviate":
        from ragloom.tools.stores.weaviate_store import WeaviateStore

        return WeaviateStore.from_settings(settings, embedder)  # type: ignore[no-any-return]
    raise ConfigError(
        f"unknown store kind {kind!r}", setting="store.kind", fix="use embedded or weaviate"
    )
