"""Test harness: offline (sockets limited to loopback via pytest-socket), clean env per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO.parent / "shared" / "datasets" / "python-docs"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No ragloom/OpenAI settings leak in from the machine; each test runs in its own cwd."""
    for name in list(os.environ):
        if name.startswith(("RAGLOOM_", "OPENAI_")) and name != "RAGLOOM_TEST_POSTGRES_URL":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield
    _reset_dspy()


def _reset_dspy() -> None:
    import sys

    if "dspy" in sys.modules:
        import dspy

        dspy.settings.configure(lm=None)


@pytest.fixture
def dataset_dir() -> Path:
    if not DATASET.exists():
        pytest.fail(f"shared dataset missing at {DATASET}")
    return DATASET
