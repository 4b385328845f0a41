"""`ragloom compile` and `ragloom prompts list` end to end (typer runner, real test server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragloom.cli import app
from ragloom.core.testing.openai_server import OpenAICompatibleServer
from ragloom.core.testing.settings import TEST_API_KEY
from tests.prompts.scripted import answer_rows, answerer_responder, write_jsonl

runner = CliRunner()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(answerer_responder) as srv:
        monkeypatch.setenv("RAGLOOM_LLM__BASE_URL", srv.base_url)
        monkeypatch.setenv("RAGLOOM_LLM__API_KEY", TEST_API_KEY)
        monkeypatch.setenv("RAGLOOM_LLM__MODEL", "gpt-4o-mini")
        monkeypatch.setenv("RAGLOOM_PROMPTS__COMPILED_DIR", str(tmp_path / "compiled"))
        monkeypatch.setenv("RAGLOOM_LOG_FORMAT", "json")
        yield srv


@pytest.fixture
def datasets(tmp_path: Path) -> tuple[Path, Path]:
    rows = answer_rows()
    return write_jsonl(tmp_path / "train.jsonl", rows[:6]), write_jsonl(
        tmp_path / "dev.jsonl", rows[6:]
    )


def _json_tail(output: str) -> dict:
    assert output.lstrip().startswith("{"), output[:500]
    return json.loads(output)  # stdout holds the JSON only


def test_compile_writes_an_artefact_that_prompts_list_shows(
    server: OpenAICompatibleServer, datasets: tuple[Path, Path], tmp_path: Path
) -> None:
    train, dev = datasets
    args = ["compile", "answerer", "--trainset", str(train), "--devset", str(dev)]
    result = runner.invoke(app, [*args, "--optimizer", "bootstrap", "--json"])
    assert result.exit_code == 0, result.output
    report = _json_tail(result.stdout)
    assert report["score_after"] > report["score_before"]
    assert Path(report["artefact"]).parent == tmp_path / "compiled" / "answerer"

    listed = runner.invoke(app, ["prompts", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = _json_tail(listed.stdout)["artefacts"]
    assert row["module"] == "answerer" and row["loaded"] and row["status"] == "ok"
    table = runner.invoke(app, ["prompts", "list"])
    assert "answerer" in table.stdout and row["hash"] in table.stdout


def test_dry_run_prints_the_estimate_and_calls_nothing(
    server: OpenAICompatibleServer, datasets: tuple[Path, Path]
) -> None:
    train, dev = datasets
    args = ["compile", "answerer", "--trainset", str(train), "--devset", str(dev), "--dry-run"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    estimate = _json_tail(result.stdout)
    assert estimate["dry_run"] and estimate["calls"] == 11
    assert estimate["cost_usd"] > 0
    assert server.chat_requests() == []
    table = runner.invoke(app, args)
    assert "total" in table.stdout and "gpt-4o-mini" in table.stdout


def test_compile_without_a_model_explains_the_fix(
    datasets: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    train, dev = datasets
    args = ["compile", "answerer", "--trainset", str(train), "--devset", str(dev)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "RAGLOOM_LLM__BASE_URL" in result.output
    bad = runner.invoke(app, [*args, "--optimizer", "magic"])
    assert bad.exit_code != 0


def _question_dir(root: Path) -> Path:
    from tests.prompts.scripted import FACTS

    (root / "corpus").mkdir(parents=True)
    for i, fact in enumerate(FACTS.values()):
        (root / "corpus" / f"fact{i}.md").write_text(f"# Fact {i}\n\n{fact}.\n")
    rows = [
        {"id": f"q{i}", "question": q, "answer": f"{fact} [c1].", "gold": [f"fact{i}.md"]}
        for i, (q, fact) in enumerate(FACTS.items())
    ]
    return write_jsonl(root / "questions.jsonl", rows).parent


def test_compile_from_a_question_directory_retrieves_once(
    server: OpenAICompatibleServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAGLOOM_EMBEDDER__KIND", "hashing")
    monkeypatch.setenv("RAGLOOM_EMBEDDER__DIMENSIONS", "64")
    dataset = _question_dir(tmp_path / "facts")
    args = ["compile", "answerer", "--trainset", str(dataset), "--k", "1", "--json"]
    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert server.chat_requests() == []
    cache = list((tmp_path / ".ragloom" / "compile-cache").glob("retrieval-*.json"))
    assert len(cache) == 1

    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = _json_tail(result.stdout)
    assert report["score_after"] > report["score_before"]
    first = server.chat_requests()[0].json or {}
    assert "[c1] (" in first["messages"][-1]["content"]
    cache_dir = tmp_path / ".ragloom" / "compile-cache"
    assert len(list(cache_dir.glob("retrieval-*.json"))) == 1  # the run reused the cache

    (dataset / "corpus" / "fact0.md").write_text("# Fact 0\n\nThe sky is grey today.\n")
    assert runner.invoke(app, [*args, "--dry-run"]).exit_code == 0
    assert len(list(cache_dir.glob("retrieval-*.json"))) == 2  # a changed corpus retrieves anew
