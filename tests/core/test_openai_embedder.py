"""OpenAIEmbedder and gateway.embed against the local server's /v1/embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from ragloom.core.embedders import Embedder
from ragloom.core.errors import AuthenticationError, MalformedResponseError
from ragloom.core.llm import LLMGateway
from ragloom.core.openai_embedder import OpenAIEmbedder
from ragloom.core.testing import Fault, HashingEmbedder, OpenAICompatibleServer


def test_embedder_protocol_shapes_and_normalisation(
    gateway: LLMGateway, server: OpenAICompatibleServer
) -> None:
    embedder = OpenAIEmbedder(gateway, model="text-embedding-3-small", dimensions=64,
                              batch_size=2)
    assert isinstance(embedder, Embedder)
    texts = ["red apples", "green pears", "red apples and pears"]
    vectors = embedder.embed_documents(texts)
    assert vectors.shape == (3, 64) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, HashingEmbedder(64).embed_documents(texts), atol=1e-5)
    query = embedder.embed_query("red apples")
    assert query.shape == (64,) and float(query @ vectors[0]) == pytest.approx(1.0, abs=1e-5)
    bodies = [r.json for r in server.requests if r.path.endswith("/embeddings")]
    assert [len(b["input"]) for b in bodies if b] == [2, 1, 1]  # batched by batch_size
    assert all(b and b["dimensions"] == 64 for b in bodies)
    assert embedder.embed_documents([]).shape == (0, 64)
    records = [r for r in gateway.usage.recent if r.kind == "embed"]
    assert len(records) == 3 and records[0].tokens_in == 4 and records[0].cost_usd is not None


def test_embedding_retries_and_errors(gateway: LLMGateway, server: OpenAICompatibleServer) -> None:
    server.enqueue_embeddings(Fault(429, retry_after=0), Fault(500))
    assert len(gateway.embed(["x"], model="text-embedding-3-small", dimensions=8)[0]) == 8
    assert gateway.usage.recent[-1].attempts == 3
    server.enqueue_embeddings(Fault(401))
    with pytest.raises(AuthenticationError):
        gateway.embed(["x"], dimensions=8)


def test_dimension_mismatch_is_reported(gateway: LLMGateway) -> None:
    embedder = OpenAIEmbedder(gateway, model="local-embed", dimensions=48, send_dimensions=False)
    with pytest.raises(MalformedResponseError, match=r"embedder\.dimensions"):
        embedder.embed_documents(["text"])  # the server answers with its default width


async def test_async_embed(gateway: LLMGateway) -> None:
    vectors = await gateway.aembed(["a", "b"], dimensions=16)
    assert len(vectors) == 2 and len(vectors[1]) == 16
    assert await gateway.aembed([]) == []
