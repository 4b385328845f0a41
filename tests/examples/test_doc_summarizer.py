"""examples/doc_summarizer.py and `ragloom summarize` run offline in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "doc_summarizer.py"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "RAGLOOM_"))}
    env["RAGLOOM_LOG_LEVEL"] = "WARNING"
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lists.md").write_text(
        "# Lists\n\nLists are mutable sequences. They grow with append and shrink with pop.\n\n"
        "## Sorting\n\nThe sort method sorts a list in place. The sorted function returns a new "
        "list and leaves the original alone.\n",
        encoding="utf-8",
    )
    (docs / "tuples.rst").write_text(
        "Tuples\n======\n\nTuples are immutable sequences. They are often used to return "
        "several values from a function.\n",
        encoding="utf-8",
    )
    (docs / "empty.txt").write_text("", encoding="utf-8")
    return docs


def test_example_prints_a_structured_summary_of_a_folder(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "summary.md"
    done = _run(str(EXAMPLE), str(folder), "--length", "short", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("## Overview")
    assert "### Lists" in done.stdout and "### Tuples" in done.stdout
    assert "Tuples are immutable sequences." in done.stdout
    assert out.read_text(encoding="utf-8").strip() == done.stdout.strip()
    assert "skipped docs/empty.txt" in done.stderr  # a bad file is reported, the rest go in
    assert "engine: extractive" in done.stderr


def test_json_output_and_the_cli_entry_agree(folder: Path, tmp_path: Path) -> None:
    example = _run(str(EXAMPLE), str(folder / "lists.md"), "--json", cwd=tmp_path)
    cli = _run("-m", "ragloom", "summarize", str(folder / "lists.md"), "--json", cwd=tmp_path)
    assert example.returncode == 0 and cli.returncode == 0, example.stderr + cli.stderr
    first, second = json.loads(example.stdout), json.loads(cli.stdout)
    for key in ("summary", "strategy", "chunks", "llm_calls", "tokens", "seconds", "engine"):
        assert key in first
    assert first["engine"] == "extractive" and first["llm_calls"] == 0
    assert first["strategy"] == "stuff" and first["chunks"] >= 1
    assert first["summary"] == second["summary"]


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    done = _run(str(EXAMPLE), str(tmp_path / "nope"), cwd=tmp_path)
    assert done.returncode == 2 and "no such file" in done.stderr


@pytest.mark.slow
def test_python_docs_tutorial_folder(dataset_dir: Path, tmp_path: Path) -> None:
    """The acceptance run: the tutorial folder, offline, structured summary on stdout."""
    done = _run(str(EXAMPLE), str(dataset_dir / "corpus" / "tutorial"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("## Overview")
    sections = [line for line in done.stdout.splitlines() if line.startswith("### ")]
    assert "### Classes" in sections and "### Errors and Exceptions" in sections
    assert len(sections) >= 10
    assert "summarizing" in done.stderr or "combined" in done.stderr  # the progress bar ran


def test_a_checkpointed_thread_can_be_run_again(folder: Path, tmp_path: Path) -> None:
    args = [str(EXAMPLE), str(folder / "lists.md"), "--thread", "t1", "--budget", "40", "--json"]
    first = _run(*args, cwd=tmp_path)
    second = _run(*args, cwd=tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert one["strategy"] == "map-reduce" and one["chunks"] == two["chunks"]
    assert one["summary"] == two["summary"]
    assert (tmp_path / ".ragloom" / "threads.db").exists()
