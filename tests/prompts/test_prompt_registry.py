"""The prompt registry: newest matching artefact, stale ones refused, pins, JSON only."""

from __future__ import annotations

import json
from pathlib import Path

import dspy
import pytest
from structlog.testing import capture_logs

from ragloom.core.errors import ArtefactError
from ragloom.core.settings import PromptSettings
from ragloom.prompts.programs import build_program, module_signature_hash
from ragloom.prompts.registry import PromptRegistry, save_artefact
from ragloom.prompts.signatures.answer import AnswerQuestion


def _compiled_answerer(answer: str) -> dspy.Module:
    program = build_program("answerer")
    demo = dspy.Example(question="Q?", context="[c1] (a)\nA.", feedback="", answer=answer)
    program.predict.demos = [demo]
    return program


def _save(tmp_path: Path, answer: str, created: str) -> str:
    meta = {"created": created, "optimizer": "bootstrap", "score_before": 0.1, "score_after": 0.9}
    return save_artefact(_compiled_answerer(answer), "answerer", meta, tmp_path).hash


def test_saved_artefact_is_json_state_with_metadata(tmp_path: Path) -> None:
    artefact = save_artefact(_compiled_answerer("A [c1]."), "answerer", {"model": "m"}, tmp_path)
    assert artefact.path == tmp_path / "answerer" / f"{artefact.hash}.json"
    state = json.loads(artefact.path.read_text())
    assert state["demos"][0]["answer"] == "A [c1]."  # the predictor's own state
    bare = dspy.Predict(AnswerQuestion)
    bare.load(str(artefact.path))  # loadable without ragloom's programs
    assert bare.demos[0]["answer"] == "A [c1]."
    meta = json.loads(artefact.meta_path.read_text())
    assert meta["module"] == "answerer"
    assert meta["signature_hash"] == module_signature_hash("answerer")
    assert meta["dspy_version"] == dspy.__version__
    assert meta["model"] == "m" and meta["created"]
    assert not list(tmp_path.rglob("*.pkl"))


def test_older_whole_program_artefacts_still_load(tmp_path: Path) -> None:
    target = tmp_path / "answerer"
    target.mkdir()
    _compiled_answerer("old format [c1].").save(str(target / "abc.json"), save_program=False)
    meta = {"module": "answerer", "hash": "abc", "created": "2026-01-01T00:00:00+00:00",
            "signature_hash": module_signature_hash("answerer")}  # fmt: skip
    (target / "abc.meta.json").write_text(json.dumps(meta))
    program = PromptRegistry(tmp_path).load("answerer")
    assert program.predict.demos[0]["answer"] == "old format [c1]."


def test_newest_matching_artefact_is_loaded(tmp_path: Path) -> None:
    _save(tmp_path, "old [c1].", "2026-01-01T00:00:00+00:00")
    newest = _save(tmp_path, "new [c1].", "2026-02-01T00:00:00+00:00")
    registry = PromptRegistry(tmp_path)
    assert registry.resolve("answerer").hash == newest
    program = registry.load("answerer")
    assert program.predict.demos[0]["answer"] == "new [c1]."
    settings = PromptSettings(compiled_dir=tmp_path)
    resolved = PromptRegistry.from_settings(settings).resolve("answerer")
    assert resolved is not None and resolved.path == tmp_path / "answerer" / f"{newest}.json"
    assert registry.load("rewriter").predict.demos == []


def test_changed_signature_refuses_artefact_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = _save(tmp_path, "A [c1].", "2026-01-01T00:00:00+00:00")
    monkeypatch.setattr(AnswerQuestion, "__doc__", "Answer in French.")
    registry = PromptRegistry(tmp_path)
    with capture_logs() as logs:
        assert registry.resolve("answerer") is None
        program = registry.load("answerer")
    assert program.predict.demos == []
    assert program.predict.signature.instructions == "Answer in French."
    (warning,) = [e for e in logs if e["event"] == "prompt artefact ignored"]
    assert warning["log_level"] == "warning"
    assert warning["artefact"].endswith(f"answerer/{digest}.json")
    assert warning["status"] == "stale"
    assert "signature hash" in warning["reason"]
    assert registry.artefacts("answerer")[0].status == "stale"


def test_pins_and_the_off_switch(tmp_path: Path) -> None:
    old = _save(tmp_path, "old [c1].", "2026-01-01T00:00:00+00:00")
    _save(tmp_path, "new [c1].", "2026-02-01T00:00:00+00:00")
    assert PromptRegistry(tmp_path, pinned={"answerer": old[:6]}).resolve("answerer").hash == old
    assert PromptRegistry(tmp_path, use_compiled=False).resolve("answerer") is None
    with pytest.raises(ArtefactError, match="answerer/nope"):
        PromptRegistry(tmp_path, pinned={"answerer": "nope"}).resolve("answerer")


def test_unreadable_artefacts_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "answerer").mkdir()
    (tmp_path / "answerer" / "broken.json").write_text("{}")
    registry = PromptRegistry(tmp_path)
    with capture_logs() as logs:
        assert registry.resolve("answerer") is None
    assert [e["status"] for e in logs] == ["unreadable"]
    good = _save(tmp_path, "A [c1].", "2026-01-01T00:00:00+00:00")
    assert registry.resolve("answerer").hash == good
    assert PromptRegistry(tmp_path / "missing").artefacts() == []
