"""`ragloom ingest`, `ask` (plain, --json, --thread, --stream) and `chat` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragloom.cli import app

runner = CliRunner()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAGLOOM_EMBEDDER__KIND", "hashing")
    monkeypatch.setenv("RAGLOOM_STORE__PATH", str(tmp_path / "store.db"))
    monkeypatch.setenv("RAGLOOM_CHECKPOINTER__PATH", str(tmp_path / "threads.db"))
    monkeypatch.setenv("RAGLOOM_LOG_LEVEL", "WARNING")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "numbers.md").write_text(
        "# Numbers\n\nTo write an octal literal, prefix the digits with 0o, as in 0o17. "
        "Hexadecimal literals use the prefix 0x, as in 0xff.\n"
    )
    (docs / "strings.md").write_text("# Strings\n\nStrings are immutable sequences of text.\n")
    result = runner.invoke(app, ["ingest", str(docs)])
    assert result.exit_code == 0, result.output
    return tmp_path


def test_ask_prints_answer_and_sources(workspace: Path) -> None:
    result = runner.invoke(app, ["ask", "How do I write an octal literal?"])
    assert result.exit_code == 0, result.output
    assert "0o" in result.output
    assert "Sources" in result.output and "numbers.md" in result.output
    assert "engine: extractive" in result.output


def test_ask_json_and_threads(workspace: Path) -> None:
    first = runner.invoke(app, ["ask", "How do I write an octal literal?", "--json",
                                "--thread", "t1"])
    data = json.loads(first.output)
    assert data["citations"][0]["source"] == "docs/numbers.md"  # relative to the cwd
    assert data["engine"] == "extractive" and data["caveat"] is None
    second = runner.invoke(app, ["ask", "and hexadecimal ones?", "--json", "--thread", "t1"])
    assert "0x" in json.loads(second.output)["answer"]


def test_ask_stream_shows_nodes_and_answer(workspace: Path) -> None:
    result = runner.invoke(app, ["ask", "How do I write an octal literal?", "--stream"])
    assert result.exit_code == 0, result.output
    assert "retrieve" in result.output and "finalize" in result.output
    assert "numbers.md" in result.output


def test_chat_repl_keeps_one_thread(workspace: Path) -> None:
    result = runner.invoke(
        app, ["chat", "--thread", "c1"], input="How do I write an octal literal?\n\n"
    )
    assert result.exit_code == 0, result.output
    assert "0o" in result.output and "numbers.md" in result.output


def test_a_typed_error_prints_one_line_and_exits_1(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGLOOM_", "OPENAI_"))}
    env.update(
        RAGLOOM_EMBEDDER__KIND="hashing",
        RAGLOOM_STORE__PATH=str(tmp_path / "store.db"),
        RAGLOOM_CHECKPOINTER__PATH=str(tmp_path / "threads.db"),
        RAGLOOM_LLM__BASE_URL="http://127.0.0.1:9/v1",  # nothing listens there
        RAGLOOM_LLM__DEADLINE="1",
        RAGLOOM_LOG_LEVEL="CRITICAL",
    )
    run = subprocess.run(
        [sys.executable, "-m", "ragloom", "ask", "What is a list?"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert run.returncode == 1
    assert run.stderr.startswith("error: [") and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_ask_stream_on_the_openai_engine_prints_only_answer_text(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragloom.core.testing import OpenAICompatibleServer
    from tests.graphs.llm_script import AssistantLLM

    llm = AssistantLLM(answer="Prefix the digits with 0o [c1], as in 0o17 [c1].")
    with OpenAICompatibleServer(llm) as server:
        monkeypatch.setenv("RAGLOOM_LLM__BASE_URL", server.base_url)
        monkeypatch.setenv("RAGLOOM_LLM__API_KEY", "sk-test-stream-key")
        result = runner.invoke(app, ["ask", "How do I write an octal literal?", "--stream"])
    assert result.exit_code == 0, result.output
    answer_part = result.stdout.split("Sources")[0]
    assert "Prefix the digits with 0o [1], as in 0o17 [1]." in answer_part
    assert "[[ ##" not in result.stdout and "[c1]" not in result.stdout
    assert "completed" not in answer_part


def test_threads_list_show_delete_prune(workspace: Path) -> None:
    for thread in ("t-old", "t-new"):
        assert runner.invoke(app, ["ask", "octal literal?", "--thread", thread]).exit_code == 0
    listed = json.loads(runner.invoke(app, ["threads", "list", "--json"]).output)
    assert {r["thread_id"] for r in listed} == {"t-old", "t-new"}
    assert all(r["messages"] == 2 and r["last_question"] == "octal literal?" for r in listed)
    shown = json.loads(runner.invoke(app, ["threads", "show", "t-old", "--json"]).output)
    assert [m["type"] for m in shown] == ["human", "ai"]
    assert runner.invoke(app, ["threads", "delete", "t-old"]).exit_code == 0
    kept = runner.invoke(app, ["threads", "prune", "--older-than", "1d"])
    assert "deleted 0 thread(s)" in kept.output
    pruned = runner.invoke(app, ["threads", "prune", "--older-than", "0m"])
    assert "deleted 1 thread(s)" in pruned.output
    assert json.loads(runner.invoke(app, ["threads", "list", "--json"]).output) == []
    bad = runner.invoke(app, ["threads", "prune", "--older-than", "soon"])
    assert bad.exit_code != 0
