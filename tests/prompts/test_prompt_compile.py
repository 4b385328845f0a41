"""Compile runs against the real OpenAI-compatible test server, through the gateway's DSPy LM.

The scripted model answers well only when the prompt carries demonstrations, so compiling with
BootstrapFewShot measurably helps; everything between (gateway, ChatAdapter, optimizer,
artefact, registry) is the real code path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragloom.agents.dspy_modules import build_dspy_roles
from ragloom.core.errors import ConfigError
from ragloom.core.llm import LLMGateway
from ragloom.core.settings import Settings
from ragloom.core.testing.openai_server import OpenAICompatibleServer
from ragloom.core.testing.settings import make_test_settings
from ragloom.prompts.compile import (
    CompileOptions,
    compile_module,
    estimate_calls,
    evaluate_program,
)
from ragloom.prompts.datasets import load_jsonl
from ragloom.prompts.metrics import answer_metric
from ragloom.prompts.registry import PromptRegistry
from ragloom.prompts.testing import has_demos, input_field, reply_for, requested_fields
from tests.prompts.scripted import FACTS, answer_rows, answerer_responder, fact_chunks, write_jsonl


@pytest.fixture
def server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(answerer_responder) as srv:
        yield srv


@pytest.fixture
def settings(tmp_path: Path, server: OpenAICompatibleServer) -> Settings:
    return make_test_settings(tmp_path, base_url=server.base_url)


@pytest.fixture
def lm(settings: Settings) -> Any:
    return LLMGateway(settings.llm).dspy_lm()


@pytest.fixture
def sets(tmp_path: Path) -> tuple[list[Any], list[Any]]:
    examples = load_jsonl(write_jsonl(tmp_path / "answers.jsonl", answer_rows()), "answerer")
    return examples[:6], examples[6:]


def test_bootstrap_compile_beats_the_baseline_and_saves_an_artefact(
    lm: Any, settings: Settings, sets: tuple[list[Any], list[Any]]
) -> None:
    train, dev = sets
    report = compile_module(
        "answerer", lm, train, dev, out_dir=settings.prompts.compiled_dir, model="test-model"
    )
    assert report.score_before == 0.0
    assert report.score_after is not None and report.score_after > 0.9
    assert report.artefact is not None and report.artefact.path.exists()
    meta = json.loads(report.artefact.meta_path.read_text())
    assert meta["score_after"] == report.score_after and meta["score_before"] == 0.0
    for key in ("signature_hash", "dspy_version", "trainset_hash", "devset_hash", "created"):
        assert meta[key]
    assert (meta["module"], meta["optimizer"], meta["metric"], meta["model"]) == (
        "answerer",
        "bootstrap",
        "answer",
        "test-model",
    )
    state = json.loads(report.artefact.path.read_text())
    assert len(state["demos"]) == 3  # the predictor state a bare dspy.Predict loads


def test_the_compiled_answerer_is_what_the_roles_load(
    lm: Any, settings: Settings, sets: tuple[list[Any], list[Any]], server: OpenAICompatibleServer
) -> None:
    train, dev = sets
    fresh = build_dspy_roles(lm, settings=settings)["answerer"]
    question = next(iter(FACTS))
    assert "not sure" in fresh.answer(question, fact_chunks(question)).text
    assert not has_demos(server.chat_requests()[-1].json or {})

    report = compile_module("answerer", lm, train, dev, out_dir=settings.prompts.compiled_dir)
    assert PromptRegistry.from_settings(settings).resolve("answerer").path == report.artefact.path  # type: ignore[union-attr]
    answerer = build_dspy_roles(lm, settings=settings)["answerer"]
    draft = answerer.answer(question, fact_chunks(question))
    assert has_demos(server.chat_requests()[-1].json or {})
    assert draft.text == f"{FACTS[question]} [1]."
    assert [c.source for c in draft.citations] == ["facts.txt"]


def test_dspy_evaluate_reproduces_the_compiled_score(
    lm: Any, settings: Settings, sets: tuple[list[Any], list[Any]]
) -> None:
    train, dev = sets
    report = compile_module("answerer", lm, train, dev, out_dir=settings.prompts.compiled_dir)
    program = PromptRegistry.from_settings(settings).load("answerer")
    result = evaluate_program(program, dev, answer_metric, lm)
    assert result.score == report.score_after
    assert result.scores == [1.0] * len(dev) and result.errors == 0
    fresh = PromptRegistry(use_compiled=False).load("answerer")
    assert evaluate_program(fresh, dev, answer_metric, lm).score == report.score_before


@pytest.mark.parametrize(
    "options",
    [CompileOptions(), CompileOptions(optimizer="random-search", num_candidates=1)],
    ids=["bootstrap", "random-search"],
)
def test_dry_run_estimate_is_within_20_percent_of_actual_calls(
    lm: Any,
    settings: Settings,
    sets: tuple[list[Any], list[Any]],
    server: OpenAICompatibleServer,
    options: CompileOptions,
) -> None:
    train, dev = sets
    estimate = estimate_calls("answerer", train, dev, options, model="gpt-4o-mini")
    report = compile_module(
        "answerer", lm, train, dev, options=options, out_dir=settings.prompts.compiled_dir
    )
    actual = len(server.chat_requests())
    assert report.calls == actual
    assert abs(estimate.calls - actual) <= 0.2 * actual
    assert estimate.cost_usd is not None and estimate.cost_usd > 0
    assert estimate.tokens_in > estimate.tokens_out > 0


def test_budget_stops_the_run_cleanly_keeping_the_partial_program(
    lm: Any, settings: Settings, sets: tuple[list[Any], list[Any]], server: OpenAICompatibleServer
) -> None:
    train, dev = sets
    seen: list[int] = []
    options = CompileOptions(budget_calls=len(dev) + 2)
    report = compile_module(
        "answerer",
        lm,
        train,
        dev,
        options=options,
        out_dir=settings.prompts.compiled_dir,
        on_call=seen.append,
    )
    assert report.budget_exhausted
    assert report.calls == len(server.chat_requests()) == len(dev) + 2
    assert seen == list(range(1, len(dev) + 3))
    assert report.score_before == 0.0 and report.score_after is None
    assert report.artefact is not None
    meta = json.loads(report.artefact.meta_path.read_text())
    assert meta["budget_exhausted"] is True
    assert len(report.program.predict.demos) == 3  # 2 bootstrapped + 1 labeled
    registry = PromptRegistry.from_settings(settings)
    assert registry.artefacts("answerer")[0].status == "unscored"
    assert registry.resolve("answerer") is None  # not loaded unless pinned
    pinned = PromptRegistry(settings.prompts.compiled_dir, pinned={"answerer": meta["hash"]})
    assert pinned.resolve("answerer").hash == meta["hash"]


def test_random_search_budget_keeps_the_best_scored_candidate(
    lm: Any, settings: Settings, sets: tuple[list[Any], list[Any]]
) -> None:
    train, dev = sets
    # baseline (4) + zero-shot candidate (4) + labeled-demos candidate (4), then it runs out
    options = CompileOptions(optimizer="random-search", num_candidates=2, budget_calls=14)
    report = compile_module(
        "answerer", lm, train, dev, options=options, out_dir=settings.prompts.compiled_dir
    )
    assert report.budget_exhausted and report.calls == 14
    assert (report.score_before, report.score_after) == (0.0, 1.0)
    assert PromptRegistry.from_settings(settings).resolve("answerer") == report.artefact


def test_mipro_without_optuna_fails_before_any_call(
    lm: Any,
    sets: tuple[list[Any], list[Any]],
    server: OpenAICompatibleServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a)
    )
    with pytest.raises(ConfigError, match="optuna"):
        compile_module("answerer", lm, *sets, options=CompileOptions(optimizer="mipro"))
    assert server.chat_requests() == []


def test_no_gain_saves_nothing_unless_ties_are_kept(
    lm: Any, settings: Settings, sets: tuple[list[Any], list[Any]]
) -> None:
    train, dev = sets
    options = CompileOptions(metric="route_match")  # answers have no route: a tie, always
    report = compile_module(
        "answerer", lm, train, dev, options=options, out_dir=settings.prompts.compiled_dir
    )
    assert report.score_before == report.score_after
    assert report.artefact is None and "did not beat" in report.note
    options.save_ties = True
    report = compile_module(
        "answerer", lm, train, dev, options=options, out_dir=settings.prompts.compiled_dir
    )
    assert report.artefact is not None


def test_budget_spent_on_the_baseline_saves_nothing(
    lm: Any, settings: Settings, sets: tuple[list[Any], list[Any]]
) -> None:
    train, dev = sets
    options = CompileOptions(budget_calls=2)
    report = compile_module(
        "answerer", lm, train, dev, options=options, out_dir=settings.prompts.compiled_dir
    )
    assert report.budget_exhausted and report.calls == 2
    assert report.artefact is None and report.program is None
    assert PromptRegistry.from_settings(settings).artefacts() == []


def judging_responder(request: dict[str, Any]) -> str:
    """The answerer as before; the faithfulness judge passes answers that cite a passage."""
    if "grounded" in requested_fields(request):
        cited = "[c1]" in input_field(request, "answer")
        return reply_for(
            request, {"grounded": cited, "unsupported_claims": [], "score": float(cited)}
        )
    return answerer_responder(request)


def test_the_faithfulness_judge_is_the_compile_metric(
    tmp_path: Path, sets: tuple[list[Any], list[Any]]
) -> None:
    train, dev = sets
    with OpenAICompatibleServer(judging_responder) as server:
        settings = make_test_settings(tmp_path, base_url=server.base_url)
        lm = LLMGateway(settings.llm).dspy_lm()
        options = CompileOptions(metric="faithfulness")
        estimate = estimate_calls("answerer", train, dev, options)
        judge = PromptRegistry.from_settings(settings).load("grounding")
        report = compile_module(
            "answerer",
            lm,
            train,
            dev,
            options=options,
            judges={"faithfulness": judge},
            out_dir=settings.prompts.compiled_dir,
        )
        judged = [r for r in server.chat_requests() if "grounded" in requested_fields(r.json)]
    assert (report.score_before, report.score_after) == (0.0, 1.0)
    assert len(judged) == report.calls / 2
    assert abs(estimate.calls - report.calls) <= 0.2 * report.calls


@pytest.mark.parametrize("module", ["rewriter", "grader", "map_summarizer"])
def test_other_modules_compile_with_their_default_metrics(tmp_path: Path, module: str) -> None:
    from tests.prompts.scripted import MODULE_ROWS, module_responder

    rows = MODULE_ROWS[module][1]
    examples = load_jsonl(write_jsonl(tmp_path / "rows.jsonl", rows), module)
    with OpenAICompatibleServer(module_responder(module)) as server:
        settings = make_test_settings(tmp_path, base_url=server.base_url)
        lm = LLMGateway(settings.llm).dspy_lm()
        report = compile_module(
            module, lm, examples[:5], examples[5:], out_dir=settings.prompts.compiled_dir
        )
    assert report.score_after is not None and report.score_before is not None
    assert report.score_after > report.score_before
    assert report.artefact is not None
    assert PromptRegistry.from_settings(settings).resolve(module) == report.artefact


def test_gepa_runs_through_the_gateway_within_its_budget(
    lm: Any, settings: Settings, sets: tuple[list[Any], list[Any]], server: OpenAICompatibleServer
) -> None:
    train, dev = sets
    options = CompileOptions(optimizer="gepa", gepa_metric_calls=12, budget_calls=40)
    estimate = estimate_calls("answerer", train, dev, options)
    assert estimate.approximate
    report = compile_module(
        "answerer", lm, train, dev, options=options, out_dir=settings.prompts.compiled_dir
    )
    assert report.calls == len(server.chat_requests()) <= 40
    assert report.score_before == 0.0
