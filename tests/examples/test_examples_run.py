"""The other examples run offline: the Python quick start and the `make demo` script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGLOOM_", "OPENAI_"))}
    env.update(
        RAGLOOM_EMBEDDER__KIND="hashing",  # the real model is covered by the slow tests
        RAGLOOM_STORE__PATH=str(tmp_path / "store.db"),
        RAGLOOM_CHECKPOINTER__PATH=str(tmp_path / "threads.db"),
        RAGLOOM_LOG_LEVEL="WARNING",
        VENV=str(Path(sys.executable).parent.parent),
    )
    return env


def test_quickstart_example(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py"), str(REPO / "docs"),
         "How are threads stored?"],
        capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "ingested" in run.stdout and "engine: extractive" in run.stdout
    cited = {line.split()[1] for line in run.stdout.splitlines() if line.startswith(" - ")}
    about_threads = {p.name for p in (REPO / "docs").glob("*.md") if "thread" in p.read_text()}
    assert cited and cited <= about_threads  # cited sources are docs that talk about threads


def test_demo_script(tmp_path: Path) -> None:
    env = _env(tmp_path)
    env.update(
        RAGLOOM_STORE__PATH=str(tmp_path / "demo" / "store.db"),
        RAGLOOM_CHECKPOINTER__PATH=str(tmp_path / "demo" / "threads.db"),
    )
    run = subprocess.run(
        ["bash", str(REPO / "examples" / "demo.sh")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "== 1. ingest" in out and "== 2. ask" in out and "== 3. summarize" in out
    assert "Sources" in out and "## Overview" in out
