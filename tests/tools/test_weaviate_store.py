"""WeaviateStore against the Weaviate-protocol test server (real client, real sockets)."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import numpy as np
import pytest
from pydantic import SecretStr

from ragloom.core.documents import Chunk
from ragloom.core.errors import (
    AuthenticationError,
    ConfigError,
    StoreError,
    StoreUnavailableError,
    StoreWriteError,
)
from ragloom.core.retry import RetryPolicy, retry_policy
from ragloom.core.settings import Settings, StoreSettings
from ragloom.core.testing.embedders import HashingEmbedder
from ragloom.core.testing.weaviate_server import WeaviateTestServer
from ragloom.tools.stores.base import Filters, embed_text, relative_score_fusion
from ragloom.tools.stores.embedded import EmbeddedStore
from ragloom.tools.stores.weaviate_store import (
    DEFAULT_TENANT,
    WeaviateStore,
    chunk_uuid,
    connection_plan,
    map_weaviate_error,
)

TEXTS = [
    ("guide/lists.md", "Python lists are mutable sequences; append adds an item to a list."),
    ("guide/lists.md", "Slicing a list returns a new list with the selected items."),
    ("guide/tuples.md", "Tuples are immutable sequences, often used for fixed records."),
    ("guide/dicts.md", "Dictionaries map keys to values; keys must be hashable."),
    ("ref/stdtypes.md", "Sequence types: list, tuple and range support indexing and slicing."),
    ("ref/stdtypes.md", "Mapping types: the dict is the standard mapping type."),
]


class CountingEmbedder(HashingEmbedder):
    """A hashing embedder that records the texts it embeds."""

    def __init__(self, dimensions: int = 64) -> None:
        super().__init__(dimensions)
        self.embedded: list[str] = []

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        return super().embed_documents(texts)


def _chunks(prefix: str = "") -> list[Chunk]:
    return [
        Chunk(
            id=f"{prefix}c{i}", source=source, text=text, title=source.split("/")[-1],
            heading_path=("Guide", f"Part {i}"), start=i * 100, end=i * 100 + len(text),
            position=i,
            metadata={"tags": ["guide"] if source.startswith("guide") else ["ref"],
                      "modified": f"2024-0{i + 1}-15"},
        )
        for i, (source, text) in enumerate(TEXTS)
    ]


def _no_wait_policy(max_retries: int = 2) -> RetryPolicy:
    return retry_policy(max_retries=max_retries, deadline=30.0, sleep=lambda _: None)


def _settings(server: WeaviateTestServer, **store: object) -> Settings:
    return Settings(store=StoreSettings(
        kind="weaviate", weaviate_url=server.url, weaviate_grpc_port=server.grpc_port,
        **store,  # type: ignore[arg-type]
    ))


@pytest.fixture(scope="module")
def server() -> Iterator[WeaviateTestServer]:
    with WeaviateTestServer() as running:
        yield running


@pytest.fixture
def embedder() -> CountingEmbedder:
    return CountingEmbedder(64)


@pytest.fixture
def store(server: WeaviateTestServer, embedder: CountingEmbedder) -> Iterator[WeaviateStore]:
    server.reset()
    opened = WeaviateStore.from_settings(
        _settings(server), embedder, skip_init_checks=True, retry=_no_wait_policy()
    )
    yield opened
    opened.close()


# -- schema and connection ------------------------------------------------------------------------


def test_collections_are_created_from_the_declared_schema(
    store: WeaviateStore, server: WeaviateTestServer
) -> None:
    chunks = server.db.classes["RagloomChunk"]
    props = {p["name"]: p for p in chunks["properties"]}
    assert set(props) == {
        "chunk_id", "source", "text", "context", "title", "heading_path", "start", "end",
        "position", "content_hash", "tags", "modified", "metadata_json",
    }
    assert props["context"]["tokenization"] == "word"  # title + heading path, BM25F-searchable
    assert props["heading_path"]["dataType"] == ["text[]"]
    assert props["modified"]["dataType"] == ["date"]
    assert props["source"]["tokenization"] == "field"
    assert chunks["multiTenancyConfig"]["enabled"] is True
    assert chunks["vectorConfig"]["default"]["vectorizer"] == {"none": {}}
    assert chunks["vectorConfig"]["default"]["vectorIndexConfig"]["distance"] == "cosine"
    assert "RagloomChunkSource" in server.db.classes


def test_reopening_keeps_the_collection_and_refuses_another_embedder(
    store: WeaviateStore, server: WeaviateTestServer
) -> None:
    store.upsert(_chunks())
    again = WeaviateStore.from_settings(_settings(server), store.embedder, skip_init_checks=True)
    assert again.count() == len(TEXTS)
    again.close()
    with pytest.raises(ConfigError, match="embedder"):
        WeaviateStore.from_settings(_settings(server), HashingEmbedder(32), skip_init_checks=True)


def test_init_checks_follow_the_setting(
    server: WeaviateTestServer, embedder: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("weaviate.connect.v4.PYPI_PACKAGE_URL", server.pypi_url)
    for skip, pings in ((True, 0), (False, 1)):
        server.reset()
        settings = _settings(server, weaviate_skip_init_checks=skip)
        WeaviateStore.from_settings(settings, embedder).close()
        assert server.calls["Health/Check"] == pings


def test_connection_plan_picks_the_connect_function() -> None:
    local = connection_plan(StoreSettings(weaviate_url="http://localhost:8080"))
    assert (local.method, local.kwargs["port"], local.kwargs["grpc_port"]) == ("local", 8080, 50051)
    assert connection_plan(StoreSettings()).method == "local"
    custom = connection_plan(
        StoreSettings(weaviate_url="https://weaviate.internal", weaviate_grpc_port=443)
    )
    assert custom.method == "custom"
    assert custom.kwargs == {
        "http_host": "weaviate.internal", "http_port": 443, "http_secure": True,
        "grpc_host": "weaviate.internal", "grpc_port": 443, "grpc_secure": True,
    }
    cloud = connection_plan(StoreSettings(weaviate_url="https://abc.c0.europe-west3.gcp.weaviate.cloud"))
    assert cloud.method == "weaviate_cloud"
    with pytest.raises(ConfigError, match="weaviate_url"):
        connection_plan(StoreSettings(weaviate_url="ftp://x"))


def test_same_http_and_grpc_port_is_a_config_error(embedder: CountingEmbedder) -> None:
    settings = Settings(store=StoreSettings(
        kind="weaviate", weaviate_url="http://127.0.0.1:8080", weaviate_grpc_port=8080
    ))
    with pytest.raises(ConfigError, match="weaviate_grpc_port"):
        WeaviateStore.from_settings(settings, embedder, skip_init_checks=True)


def test_api_key_auth(embedder: CountingEmbedder) -> None:
    with WeaviateTestServer(api_key="s3cret") as locked:
        good = WeaviateStore.from_settings(
            _settings(locked, weaviate_api_key=SecretStr("s3cret")), embedder,
            skip_init_checks=True,
        )
        good.upsert(_chunks()[:1])
        assert good.count() == 1
        good.close()
        with pytest.raises(AuthenticationError, match="weaviate_api_key"):
            WeaviateStore.from_settings(
                _settings(locked, weaviate_api_key=SecretStr("wrong-key")), embedder,
                skip_init_checks=True, retry=_no_wait_policy(),
            )


def test_unreachable_server_is_store_unavailable(embedder: CountingEmbedder) -> None:
    with socket.socket() as http, socket.socket() as grpc_probe:
        http.bind(("127.0.0.1", 0))
        grpc_probe.bind(("127.0.0.1", 0))
        ports = http.getsockname()[1], grpc_probe.getsockname()[1]
    settings = Settings(store=StoreSettings(
        kind="weaviate", weaviate_url=f"http://127.0.0.1:{ports[0]}", weaviate_grpc_port=ports[1]
    ))
    with pytest.raises(StoreUnavailableError):
        WeaviateStore.from_settings(
            settings, embedder, skip_init_checks=True, retry=_no_wait_policy(1)
        )


# -- writes ---------------------------------------------------------------------------------------


def test_upsert_is_idempotent_with_deterministic_uuids(
    store: WeaviateStore, server: WeaviateTestServer
) -> None:
    chunks = _chunks()
    assert store.upsert(chunks) == len(chunks)
    assert store.upsert(chunks) == len(chunks)
    stored = server.objects("RagloomChunk", DEFAULT_TENANT)
    assert set(stored) == {chunk_uuid(c.id) for c in chunks}
    assert store.count() == len(chunks)
    got = store.get(["c3", "missing", "c0"])
    assert [c.id for c in got] == ["c3", "c0"]
    first = chunks[3]
    assert (got[0].source, got[0].text, got[0].heading_path, got[0].start, got[0].end) == (
        first.source, first.text, first.heading_path, first.start, first.end
    )
    assert got[0].metadata == first.metadata


def test_unchanged_chunks_are_not_embedded_again(
    store: WeaviateStore, embedder: CountingEmbedder
) -> None:
    chunks = _chunks()
    store.upsert(chunks)
    assert len(embedder.embedded) == len(chunks)
    embedder.embedded.clear()
    chunks[1].text = "Slicing a list copies the selected items into a new list."
    store.upsert(chunks)
    assert embedder.embedded == [embed_text(chunks[1])]  # the contextual text
    assert embedder.embedded[0].endswith(chunks[1].text)
    top = store.search("copies the selected items", k=1, mode="vector")
    assert [c.id for c in top] == ["c1"]


def test_replace_source_swaps_chunks_and_records_the_hash(store: WeaviateStore) -> None:
    store.upsert(_chunks())
    new = [Chunk(id="n1", source="guide/lists.md", text="Lists, rewritten.", position=0)]
    assert store.replace_source("guide/lists.md", "hash-2", new) == 1
    assert [c.id for c in store.get_source("guide/lists.md")] == ["n1"]
    assert store.sources()["guide/lists.md"] == "hash-2"
    assert store.count() == len(TEXTS) - 1
    with pytest.raises(StoreError, match="another source"):
        store.replace_source("a.md", "h", [Chunk(id="x", source="b.md", text="t")])


def test_plain_upsert_registers_sources_without_clearing_a_hash(store: WeaviateStore) -> None:
    store.replace_source("guide/dicts.md", "h-dicts", [_chunks()[3]])
    store.upsert(_chunks())
    assert store.sources() == {
        "guide/dicts.md": "h-dicts", "guide/lists.md": "", "guide/tuples.md": "",
        "ref/stdtypes.md": "",
    }


def test_delete_by_source(store: WeaviateStore) -> None:
    store.upsert(_chunks())
    assert store.delete("ref/stdtypes.md") == 2
    assert store.get_source("ref/stdtypes.md") == []
    assert "ref/stdtypes.md" not in store.sources()
    assert store.count() == len(TEXTS) - 2
    assert store.delete("ref/stdtypes.md") == 0


def test_get_source_is_in_document_order(store: WeaviateStore) -> None:
    store.upsert(list(reversed(_chunks())))
    assert [c.id for c in store.get_source("guide/lists.md")] == ["c0", "c1"]


# -- tenants --------------------------------------------------------------------------------------


def test_tenants_are_created_on_first_write_and_isolated(
    store: WeaviateStore, server: WeaviateTestServer
) -> None:
    assert store.count(tenant="acme") == 0
    assert store.search("list", tenant="acme") == []
    assert "acme" not in server.db.tenants["RagloomChunk"]
    store.upsert(_chunks()[:2], tenant="acme")
    store.upsert(_chunks())
    assert "acme" in server.db.tenants["RagloomChunk"]
    assert "acme" in server.db.tenants["RagloomChunkSource"]
    assert (store.count(tenant="acme"), store.count()) == (2, len(TEXTS))
    assert store.sources(tenant="acme") == {"guide/lists.md": ""}
    assert {c.id for c in store.search("list", mode="bm25", tenant="acme")} == {"c0", "c1"}
    store.delete("guide/lists.md", tenant="acme")
    assert (store.count(tenant="acme"), store.count()) == (0, len(TEXTS))
    assert store.tenants() == [None, "acme"]


# -- search ---------------------------------------------------------------------------------------


@pytest.fixture
def pair(store: WeaviateStore, tmp_path: Path) -> Iterator[tuple[WeaviateStore, EmbeddedStore]]:
    """The same corpus in Weaviate and in the embedded store."""
    embedded = EmbeddedStore(tmp_path / "store.db", store.embedder)
    for target in (store, embedded):
        target.upsert(_chunks())
    yield store, embedded
    embedded.close()


@pytest.mark.parametrize("mode", ["bm25", "vector", "hybrid"])
@pytest.mark.parametrize("query", ["list slicing", "immutable sequences", "mapping keys"])
def test_ranks_and_scores_match_the_embedded_store(
    pair: tuple[WeaviateStore, EmbeddedStore], mode: str, query: str
) -> None:
    weaviate_store, embedded = pair
    got = weaviate_store.search(query, k=4, mode=mode, alpha=0.4)  # type: ignore[arg-type]
    want = embedded.search(query, k=4, mode=mode, alpha=0.4)  # type: ignore[arg-type]
    assert _ranked(got) == _ranked(want)
    assert [c.score for c in got] == pytest.approx([c.score for c in want], abs=1e-5)


def _ranked(chunks: list[Chunk]) -> list[str]:
    """Ids by score, scores equal up to float32 noise counting as ties broken by id."""
    return [c.id for c in sorted(chunks, key=lambda c: (-round(c.score or 0.0, 5), c.id))]


def test_hybrid_is_relative_score_fusion_of_the_two_legs(store: WeaviateStore) -> None:
    store.upsert(_chunks())
    query, alpha = "list of items", 0.7
    keyword = [(c.id, c.score or 0.0) for c in store.search(query, k=50, mode="bm25")]
    vector = [(c.id, c.score or 0.0) for c in store.search(query, k=50, mode="vector")]
    expected = relative_score_fusion(keyword, vector, alpha)[:3]
    got = store.search(query, k=3, mode="hybrid", alpha=alpha)
    assert [(c.id, c.score) for c in got] == [(i, pytest.approx(s)) for i, s in expected]


def test_search_edge_cases(store: WeaviateStore) -> None:
    store.upsert(_chunks())
    assert store.search("   ") == []
    assert store.search("list", k=0) == []
    assert store.search("!!!", mode="bm25") == []
    assert store.search("zebra", mode="bm25") == []
    with pytest.raises(ConfigError, match="mode"):
        store.search("list", mode="fuzzy")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("source:guide/dicts.md", {"c3"}),
        ("source:guide/dicts.md source:guide/tuples.md", {"c2", "c3"}),
        ("path:ref/", {"c4", "c5"}),
        ("tag:guide", {"c0", "c1", "c2", "c3"}),
        ("after:2024-03-15 before:2024-05-15", {"c2", "c3", "c4"}),
        ("path:guide/ after:2024-02-01", {"c1", "c2", "c3"}),
    ],
)
def test_filters_select_like_the_reference_semantics(
    store: WeaviateStore, text: str, expected: set[str]
) -> None:
    chunks = _chunks()
    store.upsert(chunks)
    filters = Filters.parse(text)
    assert {c.id for c in chunks if filters.matches(c)} == expected
    for mode in ("bm25", "vector", "hybrid"):
        found = store.search("sequence list dict mapping tuple types", k=10, mode=mode,
                             filters=filters)  # type: ignore[arg-type]
        assert {c.id for c in found} <= expected
    assert {c.id for c in store.search("x", k=10, mode="vector", filters=filters)} == expected


# -- failures -------------------------------------------------------------------------------------


def test_transient_unavailable_is_retried(
    store: WeaviateStore, server: WeaviateTestServer
) -> None:
    store.upsert(_chunks())
    server.calls.clear()
    server.fail_next("BatchDelete")
    assert store.delete("guide/lists.md") == 2
    assert server.calls["BatchDelete"] == 3  # failed, retried, then the source record
    assert store.count() == len(TEXTS) - 2


def test_persistent_unavailable_ends_as_store_unavailable(
    store: WeaviateStore, server: WeaviateTestServer
) -> None:
    store.upsert(_chunks())
    server.calls.clear()
    server.fail_next("BatchDelete", times=10)
    with pytest.raises(StoreUnavailableError, match="UNAVAILABLE"):
        store.delete("guide/lists.md")
    assert server.calls["BatchDelete"] == 3  # the first try and two retries


def test_running_out_of_retry_time_is_store_unavailable(
    server: WeaviateTestServer, embedder: CountingEmbedder
) -> None:
    server.reset()
    hurried = retry_policy(max_retries=5, deadline=0.01, sleep=lambda _: None)
    store = WeaviateStore.from_settings(
        _settings(server), embedder, skip_init_checks=True, retry=hurried
    )
    store.upsert(_chunks())
    server.fail_next("BatchDelete", times=5)
    with pytest.raises(StoreUnavailableError, match="deadline"):
        store.delete("guide/lists.md")
    store.close()


def test_a_permanent_grpc_error_is_a_store_error_and_not_retried(
    store: WeaviateStore, server: WeaviateTestServer
) -> None:
    store.upsert(_chunks())
    server.calls.clear()
    server.fail_next("BatchDelete", code=grpc.StatusCode.INVALID_ARGUMENT)
    with pytest.raises(StoreError) as caught:
        store.delete("guide/lists.md")
    assert not isinstance(caught.value, StoreUnavailableError)
    assert server.calls["BatchDelete"] == 1


def test_rejected_objects_are_retried(store: WeaviateStore, server: WeaviateTestServer) -> None:
    server.reject_objects(lambda props: props.get("chunk_id") == "c2", times=1)
    assert store.upsert(_chunks()) == len(TEXTS)
    assert store.count() == len(TEXTS)


def test_objects_rejected_every_time_are_reported(
    store: WeaviateStore, server: WeaviateTestServer
) -> None:
    server.reject_objects(lambda props: props.get("chunk_id") in ("c2", "c4"), times=99)
    with pytest.raises(StoreWriteError, match=r"2 of 6 chunks .*rejected.*injected.*: c2, c4") \
            as caught:
        store.upsert(_chunks())
    assert not isinstance(caught.value, StoreUnavailableError)
    assert set(caught.value.failed) == {"c2", "c4"}
    assert caught.value.sources == ["guide/tuples.md", "ref/stdtypes.md"]
    assert store.count() == len(TEXTS) - 2


def test_map_weaviate_error_classifies() -> None:
    from weaviate.exceptions import WeaviateConnectionError, WeaviateQueryError

    assert isinstance(map_weaviate_error(WeaviateConnectionError("down"), "x"),
                      StoreUnavailableError)
    unavailable = WeaviateQueryError("<_InactiveRpcError StatusCode.UNAVAILABLE>", "GRPC search")
    assert isinstance(map_weaviate_error(unavailable, "search"), StoreUnavailableError)
    bad = map_weaviate_error(WeaviateQueryError("no such prop", "GRPC search"), "search")
    assert type(bad) is StoreError
    assert "search" in str(bad)
