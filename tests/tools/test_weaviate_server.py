"""The Weaviate-protocol test server, driven by the real weaviate-client over real sockets."""

from __future__ import annotations

import math
from collections.abc import Iterator

import grpc
import httpx
import pytest
import weaviate
from weaviate.classes.config import Configure, DataType, Property, Tokenization
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter, HybridFusion, MetadataQuery
from weaviate.classes.tenants import Tenant
from weaviate.exceptions import UnexpectedStatusCodeError, WeaviateDeleteManyError
from weaviate.proto.v1 import health_weaviate_pb2

from ragloom.core.testing.weaviate_server import WeaviateTestServer, tokenize
from ragloom.tools.stores.base import relative_score_fusion
from ragloom.tools.stores.base import tokenize as store_tokenize

DOCS = {
    "00000000-0000-0000-0000-000000000001": ("the cat sat on the mat", [1.0, 0.0, 0.0]),
    "00000000-0000-0000-0000-000000000002": ("a cat and a dog and a cat", [0.8, 0.6, 0.0]),
    "00000000-0000-0000-0000-000000000003": ("dogs bark at night", [0.0, 1.0, 0.0]),
    "00000000-0000-0000-0000-000000000004": ("the night sky is dark", [0.0, 0.0, 1.0]),
    "00000000-0000-0000-0000-000000000005": ("quiet evening", [0.0, 0.6, 0.8]),
}


@pytest.fixture(scope="module")
def server() -> Iterator[WeaviateTestServer]:
    with WeaviateTestServer() as running:
        yield running


@pytest.fixture
def client(server: WeaviateTestServer) -> Iterator[weaviate.WeaviateClient]:
    server.reset()
    connected = weaviate.connect_to_local(
        host="127.0.0.1", port=server.http_port, grpc_port=server.grpc_port,
        skip_init_checks=True,
    )
    yield connected
    connected.close()


@pytest.fixture
def docs(client: weaviate.WeaviateClient) -> weaviate.collections.Collection:
    collection = client.collections.create(
        "Doc",
        properties=[
            Property(name="text", data_type=DataType.TEXT),
            Property(name="kind", data_type=DataType.TEXT, tokenization=Tokenization.FIELD),
        ],
        vector_config=Configure.Vectors.self_provided(),
        multi_tenancy_config=Configure.multi_tenancy(enabled=True),
    )
    collection.tenants.create([Tenant(name="t1")])
    tenant = collection.with_tenant("t1")
    result = tenant.data.insert_many([
        DataObject(uuid=u, properties={"text": text, "kind": "odd" if i % 2 else "even"},
                   vector=vector)
        for i, (u, (text, vector)) in enumerate(DOCS.items(), 1)
    ])
    assert not result.has_errors
    return tenant


def _fts5_bm25(query: str) -> dict[str, float]:
    """Reference BM25 as SQLite FTS5 computes it (k1=1.2, b=0.75, idf floored at 1e-6)."""
    docs = {u: tokenize(text) for u, (text, _) in DOCS.items()}
    avgdl = sum(len(t) for t in docs.values()) / len(docs)
    scores: dict[str, float] = {}
    for term in dict.fromkeys(tokenize(query)):
        n = sum(1 for t in docs.values() if term in t)
        idf = max(math.log((len(docs) - n + 0.5) / (n + 0.5)), 1e-6)
        for u, tokens in docs.items():
            f = tokens.count(term)
            if f:
                norm = f + 1.2 * (1 - 0.75 + 0.75 * len(tokens) / avgdl)
                scores[u] = scores.get(u, 0.0) + idf * f * 2.2 / norm
    return scores


def test_client_connects_with_init_checks_and_health(
    server: WeaviateTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The full startup path (OIDC probe 404, meta, gRPC health, version check) over sockets."""
    monkeypatch.setattr("weaviate.connect.v4.PYPI_PACKAGE_URL", server.pypi_url)
    server.reset()
    client = weaviate.connect_to_local(
        host="127.0.0.1", port=server.http_port, grpc_port=server.grpc_port
    )
    try:
        assert client.is_ready()
        assert client.get_meta()["version"] >= "1.27"
    finally:
        client.close()
    assert server.calls["Health/Check"] == 1
    assert server.calls["GET /v1/.well-known/openid-configuration"] == 1
    assert server.calls["GET /pypi/weaviate-client/json"] == 1


def test_health_check_answers_serving(server: WeaviateTestServer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_weaviate_pb2.WeaviateHealthCheckRequest.SerializeToString,
            response_deserializer=health_weaviate_pb2.WeaviateHealthCheckResponse.FromString,
        )
        reply = check(health_weaviate_pb2.WeaviateHealthCheckRequest(), timeout=5)
    assert reply.status == health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING


def test_schema_round_trip_fills_defaults(docs: object, client: weaviate.WeaviateClient) -> None:
    config = client.collections.use("Doc").config.get()
    assert config.multi_tenancy_config.enabled
    assert config.inverted_index_config.bm25.k1 == 1.2
    props = {p.name: p for p in config.properties}
    assert props["kind"].tokenization == Tokenization.FIELD
    assert props["text"].index_filterable and props["text"].index_searchable
    assert client.collections.exists("Doc") and not client.collections.exists("Nope")
    assert set(client.collections.list_all()) == {"Doc"}
    with pytest.raises(UnexpectedStatusCodeError):
        client.collections.create("Doc")


def test_tenants_are_listed_created_and_removed(
    docs: object, client: weaviate.WeaviateClient
) -> None:
    tenants = client.collections.use("Doc").tenants
    assert set(tenants.get()) == {"t1"}
    tenants.create([Tenant(name="t2")])
    assert set(tenants.get_by_names(["t2", "zzz"])) == {"t2"}
    assert tenants.exists("t2")
    tenants.remove(["t2"])
    assert not tenants.exists("t2")


def test_objects_are_isolated_per_tenant(docs: object, client: weaviate.WeaviateClient) -> None:
    collection = client.collections.use("Doc")
    collection.tenants.create([Tenant(name="t2")])
    assert collection.with_tenant("t2").aggregate.over_all(total_count=True).total_count == 0
    assert collection.with_tenant("t1").aggregate.over_all(total_count=True).total_count == 5


def test_bm25_scores_match_the_fts5_formula(docs: weaviate.collections.Collection) -> None:
    result = docs.query.bm25("cat night", limit=10, return_metadata=MetadataQuery(score=True))
    expected = _fts5_bm25("cat night")
    got = {str(o.uuid): o.metadata.score for o in result.objects}
    assert got == pytest.approx(expected)
    assert [str(o.uuid) for o in result.objects] == sorted(expected, key=lambda u: -expected[u])


def test_tokenizer_is_fts5_unicode61() -> None:
    """The one tokenizer (server, both stores) splits as SQLite FTS5 `unicode61` does."""
    import sqlite3

    text = "Hello, wörld_foo: 3.14 ÉTÉ-x os.path __init__"
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='unicode61 remove_diacritics 0')")
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    db.execute("INSERT INTO t(x) VALUES (?)", (text,))
    fts = [row[0] for row in db.execute("SELECT term FROM v ORDER BY offset")]
    assert tokenize(text) == fts
    assert store_tokenize is tokenize


def test_near_vector_returns_cosine_distance(docs: weaviate.collections.Collection) -> None:
    result = docs.query.near_vector(
        [1.0, 0.0, 0.0], limit=3, return_metadata=MetadataQuery(distance=True, certainty=True)
    )
    assert [str(o.uuid)[-1] for o in result.objects] == ["1", "2", "3"]
    assert [o.metadata.distance for o in result.objects] == pytest.approx([0.0, 0.2, 1.0])
    assert result.objects[1].metadata.certainty == pytest.approx(0.9)


def test_hybrid_is_relative_score_fusion(docs: weaviate.collections.Collection) -> None:
    query, vector, alpha = "cat night", [0.0, 0.6, 0.8], 0.3
    result = docs.query.hybrid(
        query, vector=vector, alpha=alpha, fusion_type=HybridFusion.RELATIVE_SCORE,
        limit=10, return_metadata=MetadataQuery(score=True),
    )
    keyword = sorted(_fts5_bm25(query).items(), key=lambda item: -item[1])
    cosine = sorted(
        ((u, sum(a * b for a, b in zip(v, vector, strict=True))) for u, (_, v) in DOCS.items()),
        key=lambda item: -item[1],
    )
    expected = relative_score_fusion(keyword, cosine, alpha)
    assert [(str(o.uuid), o.metadata.score) for o in result.objects] == [
        (u, pytest.approx(s)) for u, s in expected
    ]


def test_filters_limit_and_cursor(docs: weaviate.collections.Collection) -> None:
    odd = docs.query.fetch_objects(filters=Filter.by_property("kind").equal("odd"), limit=10)
    assert sorted(str(o.uuid)[-1] for o in odd.objects) == ["1", "3", "5"]
    assert len(docs.query.fetch_objects(limit=2).objects) == 2
    assert len(list(docs.iterator(cache_size=2))) == 5
    like = docs.query.bm25("cat", filters=Filter.by_property("kind").like("ev*"))
    assert [str(o.uuid)[-1] for o in like.objects] == ["2"]


def test_delete_many_and_injected_unavailable(
    server: WeaviateTestServer, docs: weaviate.collections.Collection
) -> None:
    server.fail_next("BatchDelete")
    with pytest.raises(WeaviateDeleteManyError, match="UNAVAILABLE"):
        docs.data.delete_many(where=Filter.by_property("kind").equal("odd"))
    result = docs.data.delete_many(where=Filter.by_property("kind").equal("odd"))
    assert (result.matches, result.successful) == (3, 3)
    assert docs.aggregate.over_all(total_count=True).total_count == 2


def test_batch_reports_object_errors(
    server: WeaviateTestServer, docs: weaviate.collections.Collection
) -> None:
    server.reject_objects(lambda props: props.get("kind") == "bad", times=1)
    result = docs.data.insert_many([
        DataObject(properties={"text": "ok", "kind": "fine"}, vector=[1.0, 0.0, 0.0]),
        DataObject(properties={"text": "no", "kind": "bad"}, vector=[1.0, 0.0, 0.0]),
        DataObject(properties={"text": "short"}, vector=[1.0, 0.0]),
    ])
    assert sorted(result.errors) == [1, 2]
    assert "injected" in result.errors[1].message
    assert "vector" in result.errors[2].message


def test_api_key_is_required_when_configured() -> None:
    with WeaviateTestServer(api_key="secret") as locked:
        response = httpx.get(f"{locked.url}/v1/meta")
        assert response.status_code == 401
        client = weaviate.connect_to_local(
            host="127.0.0.1", port=locked.http_port, grpc_port=locked.grpc_port,
            auth_credentials=weaviate.auth.Auth.api_key("secret"), skip_init_checks=True,
        )
        try:
            client.collections.create("Doc", multi_tenancy_config=Configure.multi_tenancy(True))
            assert client.collections.use("Doc").tenants.get() == {}
        finally:
            client.close()
