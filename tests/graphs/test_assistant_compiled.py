"""Compiled prompts inside the assistant: the graph loads the artefact, and a compiled answerer
scores the same through the graph as through `dspy.Evaluate` (same replies, same metric)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dspy
import pytest

from ragloom.core.llm import LLMGateway
from ragloom.core.settings import Settings
from ragloom.core.testing import OpenAICompatibleServer, make_test_settings
from ragloom.graphs.assistant import build_assistant
from ragloom.prompts.compile import compile_module, evaluate_program
from ragloom.prompts.datasets import load_jsonl
from ragloom.prompts.metrics import answer_metric
from ragloom.prompts.registry import PromptRegistry
from ragloom.prompts.testing import chat_reply, has_demos, input_field
from tests.graphs.llm_script import role_of
from tests.prompts.scripted import answer_rows, answerer_responder, fact_chunks, write_jsonl


class FactStore:
    """Returns, for a question of FACTS, the one chunk that states its fact."""

    def search(self, query: str, **_: Any) -> list:
        return [c for c in fact_chunks(query)]

    def sources(self, **_: Any) -> dict[str, str]:
        return {"facts.txt": "h"}


def responder(request: dict[str, Any]) -> str:
    """Every role but the answerer behaves perfectly; the answerer needs demos to be right."""
    role = role_of(request)
    if role == "answerer":
        return answerer_responder(request)
    if role == "router":
        return chat_reply(route="retrieve", reason="facts", target="")
    if role == "rewriter":
        return chat_reply(query=input_field(request, "question"), sub_queries=[])
    if role == "grader":
        return chat_reply(relevant=True, score=1.0)
    return chat_reply(grounded=True, unsupported_claims=[], score=1.0)


@pytest.fixture
def env(tmp_path: Path):
    with OpenAICompatibleServer(responder) as server:
        settings = make_test_settings(tmp_path, base_url=server.base_url)
        lm = LLMGateway(settings.llm).dspy_lm()
        examples = load_jsonl(write_jsonl(tmp_path / "answers.jsonl", answer_rows()), "answerer")
        yield server, settings, lm, examples[:6], examples[6:]


def _graph_score(settings: Settings, devset: list[Any]) -> list[float]:
    graph = build_assistant(settings, store=FactStore(), persist=False)
    scores = []
    for example in devset:
        result = graph.invoke({"question": example.question})
        scores.append(float(answer_metric(example, dspy.Prediction(answer=result["answer"]))))
    return scores


def test_assistant_loads_the_compiled_answerer(env) -> None:
    server, settings, lm, train, dev = env
    before = _graph_score(settings, dev)
    compile_module("answerer", lm, train, dev, out_dir=settings.prompts.compiled_dir)
    after = _graph_score(settings, dev)
    answer_requests = [r.json for r in server.chat_requests() if role_of(r.json) == "answerer"]
    assert sum(before) == 0.0 and min(after) == 1.0
    assert has_demos(answer_requests[-1]) and not has_demos(answer_requests[0])


def test_compiled_answerer_scores_the_same_in_the_graph_as_in_dspy(env) -> None:
    _, settings, lm, train, dev = env
    report = compile_module("answerer", lm, train, dev, out_dir=settings.prompts.compiled_dir)
    program = PromptRegistry.from_settings(settings).load("answerer")
    in_dspy = evaluate_program(program, dev, answer_metric, lm)
    in_graph = _graph_score(settings, dev)
    assert in_graph == in_dspy.scores
    assert sum(in_graph) / len(in_graph) == pytest.approx(report.score_after)


def test_pinning_off_uses_the_fresh_program(env) -> None:
    _, settings, lm, train, dev = env
    compile_module("answerer", lm, train, dev, out_dir=settings.prompts.compiled_dir)
    off = settings.model_copy(
        update={"prompts": settings.prompts.model_copy(update={"use_compiled": False})}
    )
    assert sum(_graph_score(off, dev)) == 0.0
