"""One conformance suite for every ChunkStore (see store_factories.py).

It uses only the ChunkStore protocol (tools/stores/base.py) over a fixed small corpus whose
rankings follow from the text: each query's expected best chunk is the only one that shares its
rare words, so any correct BM25, vector (hashing embedder) or fused ranking puts it first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from ragloom.core.documents import Chunk, make_chunk_id
from ragloom.core.testing.embedders import HashingEmbedder
from ragloom.tools.stores.base import FUSIONS, SEARCH_MODES, ChunkStore, Filters, SearchOptions
from tests.tools.store_factories import STORE_FACTORIES

DOCS = {
    "garden/tomatoes.md": (
        ["Tomatoes need full sun and steady watering; stake tomato vines early in spring.",
         "Prune tomato suckers weekly so air moves between the tomato leaves."],
        ["garden", "outdoor"], "2024-03-01T10:00:00+00:00"),
    "garden/roses.md": (
        ["Roses bloom best after hard winter pruning; feed the roses with compost."],
        ["garden", "outdoor"], "2023-06-15T10:00:00+00:00"),
    "kitchen/bread.md": (
        ["Knead the bread dough for ten minutes, then let the dough rise until doubled.",
         "Bake the bread loaf in a hot oven until the crust turns golden."],
        ["kitchen"], "2024-08-20T10:00:00+00:00"),
    "kitchen/soup.md": (
        ["Simmer the lentil soup slowly with onions, cumin and smoked paprika."],
        ["kitchen"], "2022-01-10T10:00:00+00:00"),
}


def make_chunks(source: str, texts: list[str], tags: list[str], modified: str,
                digest: str = "hash-v1") -> list[Chunk]:
    return [
        Chunk(
            id=make_chunk_id(source, position, text), source=source, text=text,
            title=source.split("/")[-1], heading_path=("Guide", source.split("/")[0]),
            start=position * 100, end=position * 100 + len(text), position=position,
            metadata={"tags": tags, "modified": modified, "content_hash": digest},
        )
        for position, text in enumerate(texts)
    ]


ALL_CHUNKS = [c for source, (texts, tags, mod) in DOCS.items()
              for c in make_chunks(source, texts, tags, mod)]
ID = {(c.source, c.position): c.id for c in ALL_CHUNKS}


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChunkStore]:
    with STORE_FACTORIES[request.param](tmp_path, HashingEmbedder(256)) as made:
        yield made


@pytest.fixture
def loaded(store: ChunkStore) -> ChunkStore:
    assert store.upsert(ALL_CHUNKS) == len(ALL_CHUNKS)
    return store


def test_store_satisfies_the_protocol(store: ChunkStore) -> None:
    assert isinstance(store, ChunkStore)
    assert store.count() == 0
    assert store.sources() == {}
    assert store.search("anything", k=5, mode="hybrid") == []


def test_upsert_then_get_round_trips_every_field(loaded: ChunkStore) -> None:
    assert loaded.count() == 6
    wanted = [ID[("kitchen/soup.md", 0)], "no-such-id", ID[("garden/tomatoes.md", 1)]]
    got = loaded.get(wanted)
    assert [c.id for c in got] == [wanted[0], wanted[2]]
    original = {c.id: c for c in ALL_CHUNKS}
    for chunk in got:
        expected = original[chunk.id]
        assert (chunk.source, chunk.text, chunk.title, chunk.heading_path) == (
            expected.source, expected.text, expected.title, expected.heading_path)
        assert (chunk.start, chunk.end, chunk.position) == (
            expected.start, expected.end, expected.position)
        assert chunk.metadata["tags"] == expected.metadata["tags"]
        assert chunk.metadata["modified"] == expected.metadata["modified"]


def test_re_upsert_is_idempotent(loaded: ChunkStore) -> None:
    before = {c.id for c in loaded.search("tomato bread roses soup", k=20, mode="vector")}
    assert loaded.upsert(ALL_CHUNKS) == len(ALL_CHUNKS)
    assert loaded.count() == 6
    after = {c.id for c in loaded.search("tomato bread roses soup", k=20, mode="vector")}
    assert before == after == {c.id for c in ALL_CHUNKS}
    assert set(loaded.sources()) == set(DOCS)


def test_get_source_returns_chunks_in_document_order(loaded: ChunkStore) -> None:
    chunks = loaded.get_source("kitchen/bread.md")
    assert [c.position for c in chunks] == [0, 1]
    assert [c.id for c in chunks] == [ID[("kitchen/bread.md", 0)], ID[("kitchen/bread.md", 1)]]
    assert loaded.get_source("nowhere.md") == []


@pytest.mark.parametrize("mode", SEARCH_MODES)
@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("lentil soup with cumin", ("kitchen/soup.md", 0)),
        ("how long to knead dough", ("kitchen/bread.md", 0)),
        ("winter pruning of roses", ("garden/roses.md", 0)),
        ("tomato suckers", ("garden/tomatoes.md", 1)),
    ],
)
def test_each_mode_ranks_the_matching_chunk_first(
    loaded: ChunkStore, mode: str, query: str, best: tuple[str, int]
) -> None:
    results = loaded.search(query, k=3, mode=mode)  # type: ignore[arg-type]
    assert results[0].id == ID[best]
    assert results[0].source == best[0]
    assert 1 <= len(results) <= 3
    scores = [c.score for c in results]
    assert all(s is not None for s in scores)
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]


def test_bm25_returns_only_chunks_with_a_query_term(loaded: ChunkStore) -> None:
    results = loaded.search("dough", k=10, mode="bm25")
    assert [c.id for c in results] == [ID[("kitchen/bread.md", 0)]]
    assert results[0].score is not None and results[0].score > 0
    both = loaded.search("bread", k=10, mode="bm25")
    assert {c.id for c in both} == {ID[("kitchen/bread.md", 0)], ID[("kitchen/bread.md", 1)]}


def test_vector_returns_k_results_with_cosine_scores(loaded: ChunkStore) -> None:
    results = loaded.search("tomato", k=4, mode="vector")
    assert len(results) == 4
    assert all(-1.0001 <= (c.score or 0) <= 1.0001 for c in results)
    assert {c.source for c in results[:2]} == {"garden/tomatoes.md"}


def test_hybrid_scores_are_fused_and_alpha_picks_the_leg(loaded: ChunkStore) -> None:
    results = loaded.search("bake the bread loaf", k=6, mode="hybrid", alpha=0.5)
    assert results[0].id == ID[("kitchen/bread.md", 1)]
    assert all(0.0 <= (c.score or 0) <= 1.0 + 1e-6 for c in results)
    assert results[0].score == pytest.approx(1.0, abs=1e-6)  # best in both legs
    for alpha, leg in ((0.0, "bm25"), (1.0, "vector")):
        fused = loaded.search("smoked paprika", k=3, mode="hybrid", alpha=alpha)
        single = loaded.search("smoked paprika", k=3, mode=leg)  # type: ignore[arg-type]
        assert fused[0].id == single[0].id == ID[("kitchen/soup.md", 0)]


@pytest.mark.parametrize("mode", SEARCH_MODES)
@pytest.mark.parametrize(
    ("filters", "allowed"),
    [
        (Filters(path_prefix="kitchen/"), {"kitchen/bread.md", "kitchen/soup.md"}),
        (Filters(sources=("garden/roses.md",)), {"garden/roses.md"}),
        (Filters(tags=("outdoor",)), {"garden/tomatoes.md", "garden/roses.md"}),
        (Filters(tags=("garden", "kitchen")), set()),
        (Filters(modified_after=date(2024, 1, 1)), {"garden/tomatoes.md", "kitchen/bread.md"}),
        (Filters(modified_before=date(2023, 12, 31)), {"garden/roses.md", "kitchen/soup.md"}),
        (Filters.parse("path:garden/ after:2024-01-01"), {"garden/tomatoes.md"}),
    ],
)
def test_filters_restrict_results_in_every_mode(
    loaded: ChunkStore, mode: str, filters: Filters, allowed: set[str]
) -> None:
    query = "tomato roses bread soup garden kitchen dough lentil"
    results = loaded.search(query, k=10, mode=mode, filters=filters)  # type: ignore[arg-type]
    assert {c.source for c in results} == allowed
    assert all(filters.matches(c) for c in results)


def test_tenants_are_isolated(store: ChunkStore) -> None:
    store.upsert(ALL_CHUNKS)
    acme = make_chunks("acme/manual.md", ["Acme rockets need lentil fuel."], ["acme"],
                       "2024-05-05T00:00:00+00:00")
    assert store.upsert(acme, tenant="acme") == 1
    assert store.count() == 6
    assert store.count(tenant="acme") == 1
    assert set(store.sources(tenant="acme")) == {"acme/manual.md"}
    assert "acme/manual.md" not in store.sources()
    for mode in SEARCH_MODES:
        in_acme = store.search("lentil", k=10, mode=mode, tenant="acme")
        assert [c.id for c in in_acme] == [acme[0].id]
        default = store.search("lentil rockets", k=10, mode=mode)
        assert acme[0].id not in {c.id for c in default}
    assert store.get([acme[0].id]) == []
    assert [c.id for c in store.get([acme[0].id], tenant="acme")] == [acme[0].id]
    assert store.delete("acme/manual.md") == 0
    assert store.delete("acme/manual.md", tenant="acme") == 1
    assert store.count(tenant="acme") == 0
    assert store.count() == 6


def test_delete_removes_a_source_everywhere(loaded: ChunkStore) -> None:
    assert loaded.delete("kitchen/bread.md") == 2
    assert loaded.count() == 4
    assert "kitchen/bread.md" not in loaded.sources()
    assert loaded.get_source("kitchen/bread.md") == []
    for mode in SEARCH_MODES:
        results = loaded.search("bread dough loaf", k=10, mode=mode)  # type: ignore[arg-type]
        assert "kitchen/bread.md" not in {c.source for c in results}
    assert loaded.delete("kitchen/bread.md") == 0


def test_replace_source_swaps_chunks_and_records_the_hash(loaded: ChunkStore) -> None:
    new = make_chunks("kitchen/bread.md", ["Sourdough starter needs daily feeding."],
                      ["kitchen"], "2024-09-01T00:00:00+00:00", digest="hash-v2")
    assert loaded.replace_source("kitchen/bread.md", "hash-v2", new) == 1
    assert loaded.count() == 5
    assert loaded.sources()["kitchen/bread.md"] == "hash-v2"
    assert [c.id for c in loaded.get_source("kitchen/bread.md")] == [new[0].id]
    assert loaded.get([ID[("kitchen/bread.md", 0)]]) == []
    for mode in SEARCH_MODES:
        top = loaded.search("sourdough starter feeding", k=1, mode=mode)  # type: ignore[arg-type]
        assert top[0].id == new[0].id
    assert loaded.search("dough rise doubled", k=10, mode="bm25") == []
    assert loaded.replace_source("kitchen/bread.md", "hash-v3", []) == 0
    assert loaded.get_source("kitchen/bread.md") == []
    assert loaded.count() == 4


def test_sources_report_content_hashes(store: ChunkStore) -> None:
    for source, (texts, tags, modified) in DOCS.items():
        store.replace_source(source, f"h-{source}", make_chunks(source, texts, tags, modified))
    assert store.sources() == {source: f"h-{source}" for source in DOCS}
    assert store.count() == 6


def test_title_and_heading_path_are_searchable(loaded: ChunkStore) -> None:
    """The chunk's context (title + heading path) is indexed beside its text (BM25F)."""
    hits = loaded.search("kitchen", k=10, mode="bm25")  # only in the heading path
    assert {c.source for c in hits} == {"kitchen/bread.md", "kitchen/soup.md"}
    heavier = replace(loaded.options, context_weight=4.0)  # type: ignore[attr-defined]
    loaded.options = heavier  # type: ignore[attr-defined]
    boosted = loaded.search("kitchen dough", k=10, mode="bm25")
    assert boosted[0].source.startswith("kitchen/")


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_ranks_the_matching_chunk_first(loaded: ChunkStore, fusion: str) -> None:
    loaded.options = SearchOptions(fusion=fusion)  # type: ignore[attr-defined,arg-type]
    for query, expected in (("lentil cumin paprika", ("kitchen/soup.md", 0)),
                            ("prune tomato suckers", ("garden/tomatoes.md", 1))):
        hits = loaded.search(query, k=3, mode="hybrid", alpha=0.5)
        assert hits[0].id == ID[expected], (fusion, query)
        assert [c.score for c in hits] == sorted((c.score for c in hits), reverse=True)


def test_stop_words_are_dropped_from_bm25_queries(loaded: ChunkStore) -> None:
    loaded.options = SearchOptions(stopwords=False)  # type: ignore[attr-defined]
    with_stop = loaded.search("the lentil", k=10, mode="bm25")
    assert len(with_stop) > 1  # "the" matches most chunks
    loaded.options = SearchOptions(stopwords=True)  # type: ignore[attr-defined]
    assert [c.id for c in loaded.search("the lentil", k=10, mode="bm25")] == [
        ID[("kitchen/soup.md", 0)]
    ]
    assert loaded.search("the", k=10, mode="bm25")  # a query of stop words still searches


def test_candidate_depth_bounds_each_hybrid_leg(loaded: ChunkStore) -> None:
    loaded.options = SearchOptions(candidates=1)  # type: ignore[attr-defined]
    hits = loaded.search("bread dough oven", k=1, mode="hybrid")
    assert [c.source for c in hits] == ["kitchen/bread.md"]
