"""Quality metrics, plain functions plus the LLM judges as DSPy modules.

The judges are one implementation used three ways: the grounding checker / document grader
roles at run time (agents wrap `FaithfulnessJudge` / `RelevanceJudge`), the LLM metrics of
`ragloom eval`, and the optimization metric of `ragloom compile` (`get_metric("faithfulness")`).

Plain metrics take strings; DSPy metrics take `(example, prediction, trace=None)` and return a
float, or a pass/fail bool while an optimizer is bootstrapping (`trace is not None`).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import dspy

from ragloom.core.extras import missing_extra
from ragloom.prompts.programs import SignatureProgram, cited_ids

Metric = Callable[..., float | bool]
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
PASS_THRESHOLD = 0.5


# ---- plain metrics ---------------------------------------------------------------------------


def normalize_text(text: str) -> str:
    """Lower-case, drop punctuation, articles and citation markers, squeeze spaces (SQuAD)."""
    text = re.sub(r"\[[^\]]*\]", " ", text.lower())
    text = _ARTICLES.sub(" ", text.translate(_PUNCT))
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalized strings are equal."""
    return float(normalize_text(prediction) == normalize_text(reference))


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall after normalization."""
    pred, ref = normalize_text(prediction).split(), normalize_text(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=1)
def _rouge() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError as exc:
        raise missing_extra("eval", "rouge-score", "the ROUGE-L metric") from exc

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (rouge-score, stemmed)."""
    if not prediction.strip() or not reference.strip():
        return 0.0
    return float(_rouge().score(reference, prediction)["rougeL"].fmeasure)


def source_matches(source: str, gold: str) -> bool:
    """A chunk source matches a gold path when equal or when one ends with the other."""
    a, b = source.replace("\\", "/"), gold.replace("\\", "/")
    return a == b or a.endswith("/" + b) or b.endswith("/" + a)


def citation_hit(cited_sources: Iterable[str], gold_sources: Iterable[str] | str) -> float:
    """1.0 when any cited source is a gold source, else 0.0 (per answer)."""
    golds = [gold_sources] if isinstance(gold_sources, str) else list(gold_sources)
    return float(any(source_matches(s, g) for s in cited_sources for g in golds))


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean; 0.0 for no values."""
    items = list(values)
    return sum(items) / len(items) if items else 0.0


def citation_hit_rate(results: Sequence[tuple[Iterable[str], Iterable[str] | str]]) -> float:
    """Share of answers that cite a gold source: `[(cited_sources, gold), ...]`."""
    return mean(citation_hit(cited, gold) for cited, gold in results)


# ---- the LLM judges --------------------------------------------------------------------------


class FaithfulnessJudge(SignatureProgram):
    """Judges whether an answer is supported by its context (the `check_grounding` signature)."""

    def __init__(self) -> None:
        from ragloom.prompts.signatures.check_grounding import CheckGrounding

        super().__init__(CheckGrounding)


class RelevanceJudge(SignatureProgram):
    """Judges whether a text addresses a question: answers (`judge_relevance`) or retrieved
    passages (`grade_document`, the document grader)."""

    def __init__(self, signature: type[dspy.Signature] | None = None) -> None:
        if signature is None:
            from ragloom.prompts.signatures.judge_relevance import JudgeRelevance

            signature = JudgeRelevance
        super().__init__(signature)


def clamp_score(value: Any, default: float = 0.0) -> float:
    """A judge's score as a float in [0, 1]; `default` when unparseable."""
    try:
        score = float(value)
    except (TypeError, ValueError):
        return default
    return min(1.0, max(0.0, score))


def judge_faithfulness(context: str, answer: str, judge: Any = None) -> float:
    """Faithfulness score of an answer to its context (uses the LM in the DSPy context)."""
    pred = (judge or FaithfulnessJudge())(context=context, answer=answer)
    return clamp_score(pred.score, default=float(bool(pred.grounded)))


def judge_relevance(question: str, response: str, judge: Any = None) -> float:
    """Answer-relevance score of a response to a question (uses the LM in the DSPy context)."""
    pred = (judge or RelevanceJudge())(question=question, response=response)
    return clamp_score(pred.score, default=float(bool(pred.relevant)))


# ---- DSPy metrics (example, prediction, trace) -----------------------------------------------


def _grade(score: float, trace: Any) -> float | bool:
    return score >= PASS_THRESHOLD if trace is not None else score


def _field(obj: Any, name: str, default: Any = "") -> Any:
    try:
        value = obj[name]
    except (KeyError, TypeError, AttributeError):
        value = getattr(obj, name, default)
    return default if value is None else value


def _citation_sources(pred: Any) -> list[str] | None:
    citations = _field(pred, "citations", None)
    if not citations:
        return None
    return [str(_field(c, "source")) for c in citations]


def answer_citation_hit(example: Any, pred: Any) -> float | None:
    """Citation hit of a predicted answer against `example.gold`: read from `pred.citations`
    (dicts or Citations with a `source`, as the graphs return them) or else from the answer's
    `[c1]` labels via `example.label_sources`. None when the example has no gold."""
    gold = _field(example, "gold", None)
    if not gold:
        return None
    cited = _citation_sources(pred)
    if cited is None:
        sources = _field(example, "label_sources", None)
        if not sources:
            return None
        labels = {label: label for label in sources}
        cited = [sources[label] for label in cited_ids(str(_field(pred, "answer")), labels)]
    return citation_hit(cited, gold)


def answer_metric(example: Any, pred: Any, trace: Any = None) -> float | bool:
    """Answer quality: token F1 against the reference, averaged with the citation hit when the
    example carries `gold`. Scores DSPy predictions (`[c1]` labels) and graph outputs alike:
    `answer_metric(example, dspy.Prediction(answer=out["answer"], citations=out["citations"]))`.
    """
    f1 = token_f1(str(_field(pred, "answer")), str(_field(example, "answer")))
    hit = answer_citation_hit(example, pred)
    return _grade(f1 if hit is None else (f1 + hit) / 2, trace)


def field_f1_metric(field: str) -> Metric:
    """Token F1 of one output field against the example's value."""

    def metric(example: Any, pred: Any, trace: Any = None) -> float | bool:
        return _grade(token_f1(str(_field(pred, field)), str(_field(example, field))), trace)

    metric.__name__ = f"{field}_f1"
    return metric


def field_match_metric(field: str) -> Metric:
    """Exact match of one output field (booleans and labels)."""

    def metric(example: Any, pred: Any, trace: Any = None) -> float | bool:
        return _grade(exact_match(str(_field(pred, field)), str(_field(example, field))), trace)

    metric.__name__ = f"{field}_match"
    return metric


def rouge_l_metric(example: Any, pred: Any, trace: Any = None) -> float | bool:
    """ROUGE-L of `summary` against the reference summary."""
    return _grade(rouge_l(str(_field(pred, "summary")), str(_field(example, "summary"))), trace)


def judge_metric(kind: str, judge: Any = None) -> Metric:
    """An LLM-judged DSPy metric. `kind="faithfulness"`: is `pred.answer` (or `summary`)
    supported by `example.context` (or `text`)? `kind="relevance"`: does `pred.answer` address
    `example.question`? Pass `judge` (e.g. the registry's compiled `grounding` program) to use
    the very judge the graphs run; else a fresh one. The LM is the one in the DSPy context."""
    if kind not in {"faithfulness", "relevance"}:
        raise KeyError(f"unknown judge {kind!r}; known: faithfulness, relevance")

    def metric(example: Any, pred: Any, trace: Any = None) -> float | bool:
        answer = str(_field(pred, "answer") or _field(pred, "summary"))
        if kind == "faithfulness":
            context = str(_field(example, "context") or _field(example, "text"))
            return _grade(judge_faithfulness(context, answer, judge), trace)
        question = str(_field(example, "question"))
        return _grade(judge_relevance(question, answer, judge), trace)

    metric.__name__ = f"{kind}_judge"
    return metric


faithfulness_metric = judge_metric("faithfulness")
relevance_metric = judge_metric("relevance")


METRICS: dict[str, Metric] = {
    "answer": answer_metric,
    "answer_f1": field_f1_metric("answer"),
    "query_f1": field_f1_metric("query"),
    "summary_rouge_l": rouge_l_metric,
    "route_match": field_match_metric("route"),
    "relevant_match": field_match_metric("relevant"),
    "grounded_match": field_match_metric("grounded"),
    "faithfulness": faithfulness_metric,
    "relevance": relevance_metric,
}
LLM_METRICS = frozenset({"faithfulness", "relevance"})

DEFAULT_METRIC: dict[str, str] = {
    "answerer": "answer",
    "rewriter": "query_f1",
    "grader": "relevant_match",
    "router": "route_match",
    "grounding": "grounded_match",
    "relevance_judge": "relevant_match",
    "map_summarizer": "summary_rouge_l",
    "reduce_summarizer": "summary_rouge_l",
}


JUDGE_MODULES = {"faithfulness": "grounding", "relevance": "relevance_judge"}


def get_metric(name: str, judges: Mapping[str, Any] | None = None) -> Metric:
    """A DSPy metric by name (see `METRICS`). For the LLM metrics, `judges` may map
    `faithfulness` / `relevance` to the judge programs to use (see `JUDGE_MODULES` for the
    registry module each corresponds to)."""
    if name in LLM_METRICS and judges and judges.get(name) is not None:
        return judge_metric(name, judges[name])
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None
