"""Store factories for the conformance suite: name -> (tmp dir, embedder) -> context of a store.

Each factory yields a fresh, empty store and closes it afterwards. Add a store here and the whole
conformance suite runs against it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from ragloom.core.embedders import Embedder
from ragloom.tools.stores.base import ChunkStore
from tests.tools.weaviate_factory import weaviate_store


@contextmanager
def embedded_store(tmp_path: Path, embedder: Embedder) -> Iterator[ChunkStore]:
    from ragloom.tools.stores.embedded import EmbeddedStore

    store = EmbeddedStore(tmp_path / "conformance.db", embedder)
    try:
        yield store
    finally:
        store.close()


STORE_FACTORIES: dict[str, Callable[[Path, Embedder], AbstractContextManager[ChunkStore]]] = {
    "embedded": embedded_store,
    "weaviate": weaviate_store,
}
