"""Retriever and the LangChain tools: typed args, citation-ready results."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragloom.core.errors import ConfigError
from ragloom.core.testing.embedders import HashingEmbedder
from ragloom.tools.retrieval import Retriever, make_retrieval_tools
from ragloom.tools.stores.base import Filters
from ragloom.tools.stores.embedded import EmbeddedStore
from tests.tools.test_store_conformance import ALL_CHUNKS, ID


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(tmp_path / "s.db", HashingEmbedder(256)) as made:
        made.upsert(ALL_CHUNKS)
        made.upsert(ALL_CHUNKS[:1], tenant="other")
        yield made


def test_retriever_uses_its_defaults_and_accepts_filter_text(store: EmbeddedStore) -> None:
    retriever = Retriever(store, mode="bm25", k=2)
    results = retriever.search("bread dough")
    assert len(results) == 2 and results[0].id == ID[("kitchen/bread.md", 0)]
    only_garden = retriever.search("bread dough roses", k=10, filters="path:garden/")
    assert {c.source for c in only_garden} == {"garden/roses.md"}
    same = retriever.search("bread dough roses", k=10, filters=Filters(path_prefix="garden/"))
    assert [c.id for c in same] == [c.id for c in only_garden]
    assert [c.position for c in retriever.get_document("kitchen/bread.md")] == [0, 1]
    with pytest.raises(ConfigError):
        Retriever(store, mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        retriever.search("x", filters="colour:red")


def test_tenant_retriever_sees_only_its_tenant(store: EmbeddedStore) -> None:
    results = Retriever(store, tenant="other", mode="vector").search("anything", k=10)
    assert [c.id for c in results] == [ALL_CHUNKS[0].id]


def test_tools_have_typed_schemas(store: EmbeddedStore) -> None:
    search, get = make_retrieval_tools(store)
    assert (search.name, get.name) == ("search_documents", "get_document")
    fields = search.args_schema.model_json_schema()["properties"]  # type: ignore[union-attr]
    assert set(fields) == {"query", "k", "mode", "filters"}
    assert fields["mode"]["enum"] == ["bm25", "vector", "hybrid"]
    assert set(get.args_schema.model_json_schema()["properties"]) == {  # type: ignore[union-attr]
        "source", "chunk_id"}
    with pytest.raises(Exception, match="mode"):
        search.invoke({"query": "x", "mode": "fuzzy"})


def test_search_documents_returns_citation_fields(store: EmbeddedStore) -> None:
    search, _ = make_retrieval_tools(store)
    results = json.loads(search.invoke({"query": "lentil soup", "k": 2, "mode": "hybrid"}))
    assert len(results) == 2
    top = results[0]
    assert set(top) == {"chunk_id", "source", "heading_path", "score", "text"}
    assert top["chunk_id"] == ID[("kitchen/soup.md", 0)]
    assert top["source"] == "kitchen/soup.md"
    assert top["heading_path"] == ["Guide", "kitchen"]
    assert top["score"] == pytest.approx(1.0)
    filtered = json.loads(search.invoke({"query": "lentil soup", "filters": "path:garden/"}))
    assert {r["source"] for r in filtered} <= {"garden/roses.md", "garden/tomatoes.md"}
    bad = json.loads(search.invoke({"query": "x", "filters": "nonsense"}))
    assert "error" in bad


def test_get_document_by_source_or_chunk_id(store: EmbeddedStore) -> None:
    _, get = make_retrieval_tools(store)
    whole = json.loads(get.invoke({"source": "kitchen/bread.md"}))
    assert whole["source"] == "kitchen/bread.md"
    assert [c["chunk_id"] for c in whole["chunks"]] == [
        ID[("kitchen/bread.md", 0)], ID[("kitchen/bread.md", 1)]]
    one = json.loads(get.invoke({"chunk_id": ID[("garden/roses.md", 0)]}))
    assert one["chunks"][0]["text"].startswith("Roses bloom")
    assert "error" in json.loads(get.invoke({}))
    assert "error" in json.loads(get.invoke({"source": "a", "chunk_id": "b"}))
    assert "not found" in json.loads(get.invoke({"source": "missing.md"}))["error"]


def test_tools_respect_their_tenant(store: EmbeddedStore) -> None:
    search, get = make_retrieval_tools(store, tenant="other")
    results = json.loads(search.invoke({"query": "tomato", "k": 10}))
    assert [r["chunk_id"] for r in results] == [ALL_CHUNKS[0].id]
    assert "error" in json.loads(get.invoke({"source": "kitchen/bread.md"}))
