"""The composition root: one gateway and one program load per build, the same answer by every
path (CLI, quickstart example, `graphs.build_assistant()`), and what it opened is closed."""

from __future__ import annotations

import inspect
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ragloom.core.testing import OpenAICompatibleServer
from ragloom.core.testing.settings import make_test_settings
from ragloom.graphs.wiring import Wiring

REPO = Path(__file__).resolve().parents[2]
QUESTION = "How do I write an octal literal?"


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
        "Hexadecimal literals use the prefix 0x, as in 0xff. Binary uses 0b.\n"
    )
    (docs / "strings.md").write_text("# Strings\n\nStrings are immutable sequences of text.\n")
    return tmp_path


def test_cli_quickstart_and_build_assistant_give_the_same_answer(
    workspace: Path,
) -> None:
    from ragloom.cli import app

    runner = CliRunner()
    docs = str(workspace / "docs")
    assert runner.invoke(app, ["ingest", docs, "--root", docs]).exit_code == 0  # as quickstart
    cli = json.loads(runner.invoke(app, ["ask", QUESTION, "--json"]).output)

    example = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py"), str(workspace / "docs"),
         QUESTION],
        capture_output=True, text=True, timeout=120, check=True, cwd=workspace,
    )  # fmt: skip

    import graphs

    result = graphs.build_assistant().invoke(
        {"question": QUESTION}, {"configurable": {"thread_id": "same"}}
    )
    assert cli["answer"] == result["answer"] and cli["answer"] in example.stdout
    assert cli["citations"] == result["citations"] and result["citations"]
    assert result["messages"][-1].content == result["answer"]
    assert result["messages"][-1].response_metadata["citations"] == result["citations"]


def test_one_gateway_and_one_program_load_per_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragloom.core import llm
    from ragloom.prompts.registry import PromptRegistry

    gateways: list[Any] = []
    loads: list[str] = []
    real_init, real_load = llm.LLMGateway.__init__, PromptRegistry.load

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        gateways.append(self)
        real_init(self, *args, **kwargs)

    def counting_load(self: PromptRegistry, module: str) -> Any:
        loads.append(module)
        return real_load(self, module)

    monkeypatch.setattr(llm.LLMGateway, "__init__", counting_init)
    monkeypatch.setattr(PromptRegistry, "load", counting_load)
    with OpenAICompatibleServer() as server:
        settings = make_test_settings(
            tmp_path, base_url=server.base_url,
            embedder={"kind": "openai", "model": "text-embedding-3-small", "dimensions": 64},
        )  # fmt: skip
        with Wiring(settings) as wiring:
            wiring.assistant()
            wiring.summarizer()
            assert wiring.embedder.gateway is wiring.gateway  # type: ignore[attr-defined]
    assert len(gateways) == 1
    assert len(loads) == len(set(loads))  # each program once, shared by both graphs


def test_wiring_closes_what_it_opened_and_not_what_it_was_given(tmp_path: Path) -> None:
    from ragloom.core.testing.embedders import HashingEmbedder
    from ragloom.tools.stores.embedded import EmbeddedStore

    settings = make_test_settings(tmp_path)
    given = EmbeddedStore(tmp_path / "given.db", HashingEmbedder(256))
    with Wiring(settings, store=given) as wiring:
        wiring.assistant()
        saver = wiring.checkpointer
        assert wiring.embedder is given.embedder  # the store's embedder, for every role
    with pytest.raises(sqlite3.ProgrammingError):
        saver.conn.execute("select 1")  # type: ignore[attr-defined]
    assert given.sources() == {}  # still open: the caller owns it
    given.close()


def test_public_builders_keep_their_real_signatures() -> None:
    import graphs
    import ragloom.graphs
    from ragloom.graphs.assistant import build_assistant
    from ragloom.graphs.summarizer import build_summarizer

    assert graphs.build_assistant is ragloom.graphs.build_assistant is build_assistant
    assert graphs.build_summarizer is build_summarizer
    params = inspect.signature(graphs.build_assistant).parameters
    assert {"settings", "store", "llm", "checkpointer", "persist", "tenant"} <= set(params)
    assert "Any" not in str(inspect.signature(build_assistant))
