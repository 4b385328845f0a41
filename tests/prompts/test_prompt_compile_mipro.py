"""MIPROv2 compiles against the local server (optuna installed as a dependency)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragloom.core.llm import LLMGateway
from ragloom.core.testing import OpenAICompatibleServer, make_test_settings
from ragloom.prompts.compile import CompileOptions, compile_module
from ragloom.prompts.datasets import load_jsonl
from ragloom.prompts.testing import reply_for
from tests.prompts.scripted import answer_rows, answerer_responder, write_jsonl


def _responder(request: dict[str, Any]) -> str:
    """The answerer needs demos to be right; MIPRO's proposer prompts get generic replies."""
    if "`feedback`" in str(request["messages"][0].get("content", "")):
        return answerer_responder(request)
    return reply_for(request, {})


def test_mipro_compile_beats_the_baseline(tmp_path: Path) -> None:
    with OpenAICompatibleServer(_responder) as server:
        settings = make_test_settings(tmp_path, base_url=server.base_url)
        lm = LLMGateway(settings.llm).dspy_lm()
        examples = load_jsonl(write_jsonl(tmp_path / "a.jsonl", answer_rows()), "answerer")
        options = CompileOptions(optimizer="mipro", num_candidates=2, num_trials=3)
        report = compile_module(
            "answerer", lm, examples[:6], examples[6:], options=options, out_dir=tmp_path / "c"
        )
    assert report.score_before == 0.0
    assert report.score_after == 1.0
    assert report.artefact is not None and report.artefact.path.exists()
