"""Rerankers: same chunks back, best first, never a failure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from ragloom.core.documents import Chunk
from ragloom.core.testing.embedders import HashingEmbedder
from ragloom.tools.rerank import (
    CrossEncoderReranker,
    NoReranker,
    Reranker,
    SemanticReranker,
    WeaviateReranker,
    reorder,
)


def _chunks() -> list[Chunk]:
    texts = [
        "Lists are mutable sequences. They hold items of any type in order.",
        "Dictionaries map keys to values. Use copy.deepcopy to copy nested dictionaries.",
        "Tuples are immutable. Slicing works on them too.",
    ]
    return [Chunk(id=f"c{i}", source=f"s{i}.md", text=t, score=1.0 - 0.1 * i)
            for i, t in enumerate(texts)]


def test_every_reranker_satisfies_the_protocol() -> None:
    for reranker in (NoReranker(), SemanticReranker(HashingEmbedder(64)),
                     CrossEncoderReranker("m", model_object=object()), WeaviateReranker(None)):
        assert isinstance(reranker, Reranker)


def test_reorder_is_stable_and_sets_scores() -> None:
    chunks = _chunks()
    out = reorder(chunks, [0.5, 0.9, 0.5])
    assert [c.id for c in out] == ["c1", "c0", "c2"]
    assert [c.score for c in out] == [0.9, 0.5, 0.5]
    assert chunks[0].score == 1.0  # the input is not mutated


def test_semantic_reranker_lifts_the_chunk_whose_sentence_matches() -> None:
    chunks = _chunks()
    reranked = SemanticReranker(HashingEmbedder(256), weight=0.9).rerank(
        "copy nested dictionaries with deepcopy", chunks
    )
    assert reranked[0].id == "c1"
    assert sorted(c.id for c in reranked) == ["c0", "c1", "c2"]
    assert NoReranker().rerank("q", chunks) == chunks


class _FakeCrossEncoder:
    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []

    def predict(self, pairs: Sequence[tuple[str, str]], **_: Any) -> np.ndarray:
        self.pairs = list(pairs)
        return np.array([float("tuple" in p[1].lower()) for p in pairs])


def test_cross_encoder_scores_query_passage_pairs() -> None:
    model = _FakeCrossEncoder()
    chunks = [*_chunks()[:2], Chunk(id="t", source="t.md", text="Tuples.", title="Types",
                                     heading_path=("Types", "Tuples"))]
    out = CrossEncoderReranker("fake", model_object=model).rerank("what is a tuple", chunks)
    assert out[0].id == "t"
    assert model.pairs[2] == ("what is a tuple", "Types > Tuples\nTuples.")


class _Store:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def rerank(self, query: str, ids: Sequence[str], *, tenant: str | None = None
               ) -> dict[str, float]:
        if self.fail:
            raise RuntimeError("module not available")
        return {"c2": 3.0, "c0": 1.0, "c1": 2.0}


def test_weaviate_reranker_uses_the_store_and_keeps_order_on_failure() -> None:
    chunks = _chunks()
    assert [c.id for c in WeaviateReranker(_Store()).rerank("q", chunks)] == ["c2", "c1", "c0"]
    assert WeaviateReranker(_Store(fail=True)).rerank("q", chunks) == chunks


def test_llm_reranker_reads_labels_and_keeps_unranked_after() -> None:
    from dspy.utils import DummyLM

    from ragloom.agents.rerank import LLMReranker

    chunks = _chunks()
    lm = DummyLM([{"ranking": ["c3", "c1"]}])
    out = LLMReranker(lm).rerank("tuples?", chunks)
    assert [c.id for c in out] == ["c2", "c0", "c1"]
    broken = DummyLM([{"nothing": "x"}, {"nothing": "y"}])
    assert [c.id for c in LLMReranker(broken).rerank("tuples?", chunks)] == ["c0", "c1", "c2"]


def test_build_reranker_follows_the_settings() -> None:
    from dspy.utils import DummyLM

    from ragloom.agents.rerank import LLMReranker
    from ragloom.core.errors import ConfigError
    from ragloom.core.settings import load_settings
    from ragloom.tools.rerank import build_reranker

    offline = load_settings(engine="extractive")
    assert isinstance(build_reranker(offline), NoReranker)
    local = type("Local", (), {"name": "all-MiniLM-L6-v2", "dimensions": 384})()
    assert isinstance(build_reranker(offline, embedder=local), NoReranker)  # measured: no gain
    semantic = load_settings(engine="extractive", retrieval={"reranker": "semantic"})
    assert isinstance(build_reranker(semantic, embedder=local), SemanticReranker)
    none = load_settings(engine="openai", retrieval={"reranker": "none"})
    def llm() -> LLMReranker:
        return LLMReranker(DummyLM([{"ranking": []}]))

    assert isinstance(build_reranker(none, llm=llm), NoReranker)
    ce = load_settings(retrieval={"cross_encoder_model": "/models/ce"})
    assert isinstance(build_reranker(ce), CrossEncoderReranker)
    online = load_settings(engine="openai")  # the grader already judges each passage
    assert isinstance(build_reranker(online, llm=llm), NoReranker)
    asked = load_settings(engine="openai", retrieval={"reranker": "llm"})
    assert isinstance(build_reranker(asked, llm=llm), LLMReranker)
    with pytest.raises(ConfigError):
        build_reranker(asked)  # no LM to rerank with
    with pytest.raises(ConfigError):
        build_reranker(load_settings(retrieval={"reranker": "cross-encoder"}))
