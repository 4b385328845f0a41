"""Retrieval metrics on hand-computed cases and on a tiny synthetic dataset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ragloom.core.errors import ConfigError
from ragloom.core.testing.embedders import HashingEmbedder
from ragloom.tools.evaluation import (
    dedupe_sources,
    evaluate_retrieval,
    first_relevant_rank,
    load_questions,
    mean_metrics,
    question_metrics,
    render_table,
)
from ragloom.tools.ingest import ingest_paths
from ragloom.tools.stores.embedded import EmbeddedStore


def test_question_metrics_by_hand() -> None:
    assert question_metrics(["a", "b", "c"], ["a"]) == {
        "recall@1": 1.0, "recall@5": 1.0, "recall@10": 1.0, "mrr": 1.0, "ndcg@10": 1.0}
    second = question_metrics(["x", "g", "y"], ["g"])
    assert second["recall@1"] == 0.0 and second["recall@5"] == 1.0
    assert second["mrr"] == 0.5
    assert second["ndcg@10"] == pytest.approx(1 / math.log2(3))
    sixth = question_metrics([f"d{i}" for i in range(5)] + ["g"], ["g"])
    assert (sixth["recall@5"], sixth["recall@10"]) == (0.0, 1.0)
    assert sixth["mrr"] == pytest.approx(1 / 6)
    missing = question_metrics([f"d{i}" for i in range(10)] + ["g"], ["g"])
    assert missing == {"recall@1": 0.0, "recall@5": 0.0, "recall@10": 0.0, "mrr": 0.0,
                       "ndcg@10": 0.0}
    two_gold = question_metrics(["g1", "x", "g2"], ["g1", "g2"])
    assert two_gold["recall@1"] == 0.5 and two_gold["recall@5"] == 1.0
    ideal = 1 + 1 / math.log2(3)
    assert two_gold["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / ideal)


def test_helpers() -> None:
    assert dedupe_sources(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]
    assert first_relevant_rank(["a", "b", "c"], {"c"}) == 3
    assert first_relevant_rank(["a"], {"z"}) is None
    rows = [question_metrics(["a"], ["a"]), question_metrics(["b"], ["a"])]
    assert mean_metrics(rows)["recall@1"] == 0.5
    assert mean_metrics([])["mrr"] == 0.0


def _dataset(root: Path) -> Path:
    corpus = root / "corpus"
    (corpus / "faq").mkdir(parents=True)
    (corpus / "faq" / "volcano.rst").write_text("Volcanoes erupt molten lava and ash.\n")
    (corpus / "faq" / "glacier.rst").write_text("Glaciers carve valleys with slow moving ice.\n")
    (corpus / "desert.md").write_text("# Deserts\n\nDeserts get little rain and much sand.\n")
    questions = [
        {"id": "q1", "question": "why do volcanoes erupt lava", "gold": "faq/volcano.rst"},
        {"id": "q2", "question": "how do glaciers carve valleys", "gold": "faq/glacier.rst"},
        {"id": "q3", "question": "where is there little rain", "gold": ["desert.md"]},
        {"id": "q4", "question": "what about ash and ice", "gold": "faq/glacier.rst"},
    ]
    (root / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in questions) + "\n")
    return root


def test_evaluate_retrieval_on_a_tiny_dataset(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "ds")
    assert [q.gold for q in load_questions(dataset)][2] == ("desert.md",)
    with EmbeddedStore(tmp_path / "s.db", HashingEmbedder(256)) as store:
        ingest_paths([dataset / "corpus"], store, root=dataset / "corpus", progress=False)
        result = evaluate_retrieval(dataset, store, ["bm25", "vector", "hybrid"], 10)
    assert result["questions"] == 4 and result["gold_missing"] == 0
    assert set(result["modes"]) == {"bm25", "vector", "hybrid"}
    bm25 = result["modes"]["bm25"]
    # q1-q3 rank their gold first; q4 ("ash" is in volcano, "ice" in glacier) ties
    assert bm25["recall@1"] in (0.75, 1.0)
    assert bm25["recall@5"] == 1.0
    for metrics in result["modes"].values():
        assert 0.0 <= metrics["ndcg@10"] <= 1.0
        assert metrics["recall@10"] >= metrics["recall@5"] >= metrics["recall@1"]
    table = render_table(result)
    assert table.splitlines()[0].startswith("| mode | recall@1")
    assert len(table.splitlines()) == 5


def test_missing_questions_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"questions\.jsonl"):
        load_questions(tmp_path)
