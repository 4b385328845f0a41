"""The conformance-suite factory for WeaviateStore: a fresh collection on a shared test server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ragloom.core.embedders import Embedder
from ragloom.core.retry import retry_policy
from ragloom.core.testing.weaviate_server import shared_server
from ragloom.tools.stores.base import ChunkStore


@contextmanager
def weaviate_store(tmp_path: Path, embedder: Embedder) -> Iterator[ChunkStore]:
    """A connected, empty WeaviateStore (its own collection), dropped again afterwards."""
    import weaviate

    from ragloom.tools.stores.weaviate_store import WeaviateStore

    server = shared_server()
    client = weaviate.connect_to_local(
        host="127.0.0.1", port=server.http_port, grpc_port=server.grpc_port,
        skip_init_checks=True,
    )
    collection = f"Conformance{uuid.uuid4().hex[:12]}"
    policy = retry_policy(max_retries=2, deadline=10.0, sleep=lambda _: None)
    store = WeaviateStore(client, embedder, collection=collection, retry=policy, owns_client=True)
    try:
        yield store
    finally:
        client.collections.delete([store.collection, store.sources_collection])
        store.close()
