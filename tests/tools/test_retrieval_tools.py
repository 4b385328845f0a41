"""Retriever, the LangChain retriever and the DSPy retriever: citation-ready results."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ragloom.core.errors import ConfigError
from ragloom.core.testing.embedders import HashingEmbedder
from ragloom.tools.retrieval import DSPyRetriever, Retriever, StoreRetriever
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


def test_langchain_retriever_returns_documents_with_citation_metadata(
    store: EmbeddedStore,
) -> None:
    retriever = StoreRetriever(store=store, k=2, mode="hybrid")
    docs = retriever.invoke("lentil soup")
    assert len(docs) == 2 and docs[0].id == ID[("kitchen/soup.md", 0)]
    assert docs[0].metadata["source"] == "kitchen/soup.md"
    assert docs[0].metadata["heading_path"] == ["Guide", "kitchen"]
    assert docs[0].page_content.startswith("Simmer the lentil")
    garden = StoreRetriever(store=store, k=10, filters="path:garden/").invoke("lentil soup")
    assert {d.metadata["source"] for d in garden} <= {"garden/roses.md", "garden/tomatoes.md"}
    other = StoreRetriever(store=store, k=10, tenant="other", mode="vector").invoke("tomato")
    assert [d.id for d in other] == [ALL_CHUNKS[0].id]
    tool = retriever.as_tool(name="search_docs", description="Search the documents.")
    assert "lentil" in str(tool.invoke({"input": "lentil soup"})).lower()


def test_langchain_chain_can_use_the_retriever(store: EmbeddedStore) -> None:
    from langchain_core.runnables import RunnableLambda

    chain = StoreRetriever(store=store, k=1) | RunnableLambda(
        lambda docs: f"{docs[0].metadata['source']}: {docs[0].page_content}"
    )
    assert chain.invoke("lentil soup").startswith("kitchen/soup.md: Simmer")


def test_dspy_retriever_in_a_module_and_as_dspy_retrieve(store: EmbeddedStore) -> None:
    import dspy

    rm = DSPyRetriever(store, k=2)
    passages = rm("lentil soup")
    assert passages[0].chunk_id == ID[("kitchen/soup.md", 0)]

    class Lookup(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.retrieve = dspy.Retrieve(k=1)

        def forward(self, question: str) -> dspy.Prediction:
            return dspy.Prediction(context=self.retrieve(question).passages)

    with dspy.context(rm=rm):
        out = Lookup()(question="lentil soup")
    assert len(out.context) == 1 and out.context[0].startswith("Simmer the lentil")
