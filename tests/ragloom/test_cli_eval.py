"""`ragloom eval retrieval|answers|summaries|all` on a tiny dataset, and the --min gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragloom.cli import app

runner = CliRunner()

LIBRARY_PAGE = """\
:mod:`volcano` --- Volcano tools
================================

The volcano module measures eruptions, tracks lava flows and predicts ash clouds for
observatories that watch active volcanoes.

Eruptions
---------

An eruption starts when magma rises. Lava flows downhill and cools into rock. Ash clouds
drift with the wind and can ground aircraft. Observatories measure gas and tremors before an
eruption. The module reads seismometer data. It also plots lava flows on maps.
"""


@pytest.fixture
def dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAGLOOM_EMBEDDER__KIND", "hashing")
    monkeypatch.setenv("RAGLOOM_STORE__PATH", str(tmp_path / "work" / "store.db"))
    monkeypatch.setenv("RAGLOOM_LOG_LEVEL", "WARNING")
    root = tmp_path / "ds"
    (root / "corpus" / "faq").mkdir(parents=True)
    (root / "corpus" / "library").mkdir()
    (root / "corpus" / "faq" / "lava.rst").write_text("Lava is molten rock from volcanoes.\n")
    (root / "corpus" / "faq" / "ice.rst").write_text("Glaciers are slow rivers of ice.\n")
    (root / "corpus" / "library" / "volcano.rst").write_text(LIBRARY_PAGE)
    rows = [
        {"id": "1", "question": "What is lava?", "answer": "Lava is molten rock.",
         "gold": "faq/lava.rst"},
        {"id": "2", "question": "What are glaciers?", "answer": "Slow rivers of ice.",
         "gold": "faq/ice.rst"},
    ]
    (root / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_eval_all_json(dataset: Path) -> None:
    result = runner.invoke(app, ["eval", "all", "--dataset", str(dataset), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert set(figures["retrieval"]["modes"]) == {"bm25", "vector", "hybrid"}
    assert figures["retrieval"]["modes"]["bm25"]["recall@1"] == 1.0
    assert figures["answers"]["questions"] == 2
    assert figures["answers"]["citation_hit_rate"] == 1.0
    assert figures["answers"]["token_f1"] > 0.3
    assert figures["summaries"]["pages"] == 1
    assert figures["summaries"]["engine"] == "extractive"


def test_eval_tables_and_store_reuse(dataset: Path) -> None:
    first = runner.invoke(app, ["eval", "retrieval", "--dataset", str(dataset), "--modes", "bm25"])
    assert first.exit_code == 0, first.output
    assert "bm25" in first.output and "ndcg@10" in first.output and "hybrid" not in first.output
    stores = list((dataset.parent / "work" / "eval").glob("*.db"))
    assert len(stores) == 1  # one store per dataset and embedder, reused by later runs
    again = runner.invoke(app, ["eval", "answers", "--dataset", str(dataset)])
    assert again.exit_code == 0 and "citation_hit_rate" in again.output


def test_min_gate_fails_below_and_passes_above(dataset: Path) -> None:
    args = ["eval", "retrieval", "--dataset", str(dataset), "--modes", "bm25", "--json"]
    passing = runner.invoke(app, [*args, "--min", "retrieval.modes.bm25.mrr=0.5"])
    assert passing.exit_code == 0
    failing = runner.invoke(app, [*args, "--min", "retrieval.modes.bm25.mrr=1.01"])
    assert failing.exit_code == 1
    assert "below minimum" in failing.output
    unknown = runner.invoke(app, [*args, "--min", "retrieval.modes.nope=1"])
    assert unknown.exit_code == 1 and "no such figure" in unknown.output


def test_eval_answers_on_the_openai_engine_adds_the_llm_judges(
    dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragloom.core.testing import OpenAICompatibleServer
    from tests.graphs.llm_script import AssistantLLM

    llm = AssistantLLM()
    with OpenAICompatibleServer(llm) as server:
        monkeypatch.setenv("RAGLOOM_LLM__BASE_URL", server.base_url)
        result = runner.invoke(app, ["eval", "answers", "--dataset", str(dataset), "--json"])
    assert result.exit_code == 0, result.output
    answers = json.loads(result.stdout)["answers"]
    assert answers["engine"] == "openai"
    assert answers["judge_faithfulness"] == 1.0 and answers["judge_relevance"] == 0.8
    assert llm.calls["relevance_judge"] == 2  # one judgement per question
