"""Plain metrics and the LLM judges."""

from __future__ import annotations

import dspy
import pytest
from dspy.utils import DummyLM

from ragloom.prompts.metrics import (
    FaithfulnessJudge,
    answer_metric,
    citation_hit,
    citation_hit_rate,
    exact_match,
    faithfulness_metric,
    get_metric,
    judge_relevance,
    rouge_l,
    token_f1,
)


def test_token_f1_and_exact_match_normalize() -> None:
    assert exact_match("The Sky is blue!", "sky is blue") == 1.0
    assert token_f1("the sky is blue [c1]", "sky is blue") == 1.0
    assert token_f1("sky is green", "sky is blue") == pytest.approx(2 / 3)
    assert token_f1("", "x") == 0.0
    assert token_f1("cats", "dogs") == 0.0


def test_rouge_l_rewards_shared_subsequences() -> None:
    ref = "Python uses indentation to group statements."
    assert rouge_l(ref, ref) == pytest.approx(1.0)
    assert 0.0 < rouge_l("Python groups statements by indentation", ref) < 1.0
    assert rouge_l("", ref) == 0.0


def test_citation_hit_matches_paths_by_suffix() -> None:
    assert citation_hit(["/data/corpus/faq/design.rst"], "faq/design.rst") == 1.0
    assert citation_hit(["faq/other.rst"], ["faq/design.rst"]) == 0.0
    assert citation_hit_rate([(["a.rst"], "a.rst"), (["b.rst"], "a.rst")]) == 0.5


def test_answer_metric_averages_f1_and_citation_hit() -> None:
    example = dspy.Example(
        answer="sky is blue", label_sources={"c1": "faq/sky.rst", "c2": "x.rst"}, gold="faq/sky.rst"
    )
    assert answer_metric(example, dspy.Prediction(answer="Sky is blue [c1].")) == 1.0
    assert answer_metric(example, dspy.Prediction(answer="Sky is blue [c2].")) == 0.5
    assert answer_metric(example, dspy.Prediction(answer="no idea"), trace=[]) is False
    graph_output = {"answer": "Sky is blue [1].", "citations": [{"source": "faq/sky.rst"}]}
    assert answer_metric(example, dspy.Prediction(**graph_output)) == 1.0


def test_faithfulness_judge_is_a_dspy_metric() -> None:
    lm = DummyLM([{"grounded": False, "unsupported_claims": ["x"], "score": 0.25}])
    example = dspy.Example(question="q", context="[c1] (a)\nfacts")
    with dspy.context(lm=lm):
        assert faithfulness_metric(example, dspy.Prediction(answer="claims")) == 0.25
    assert "[[ ## context ## ]]\n[c1] (a)\nfacts" in lm.history[-1]["messages"][-1]["content"]
    assert isinstance(FaithfulnessJudge().predict, dspy.Predict)


def test_relevance_judge_clamps_scores() -> None:
    lm = DummyLM([{"relevant": True, "score": 7}])
    with dspy.context(lm=lm):
        assert judge_relevance("q", "a") == 1.0


def test_unknown_metric_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="faithfulness"):
        get_metric("nope")
