"""The assistant over the Weaviate store (through the Weaviate-protocol test server): ingest via
the CLI with `store.kind = weaviate`, then a cited answer per tenant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragloom.cli import app
from ragloom.core.testing.weaviate_server import WeaviateTestServer


@pytest.fixture
def weaviate_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with WeaviateTestServer() as server:
        for name, value in {
            "RAGLOOM_STORE__KIND": "weaviate",
            "RAGLOOM_STORE__WEAVIATE_URL": server.url,
            "RAGLOOM_STORE__WEAVIATE_GRPC_PORT": str(server.grpc_port),
            "RAGLOOM_STORE__WEAVIATE_SKIP_INIT_CHECKS": "true",
            "RAGLOOM_EMBEDDER__KIND": "hashing",
            "RAGLOOM_CHECKPOINTER__PATH": str(tmp_path / "threads.db"),
            "RAGLOOM_LOG_LEVEL": "WARNING",
        }.items():
            monkeypatch.setenv(name, value)
        yield server


def _docs(root: Path, text: str) -> Path:
    root.mkdir(parents=True)
    (root / "numbers.md").write_text(f"# Numbers\n\n{text}\n")
    (root / "other.md").write_text("# Other\n\nStrings are immutable sequences of text.\n")
    return root


def test_cited_answers_from_weaviate_per_tenant(weaviate_env, tmp_path: Path) -> None:
    runner = CliRunner()
    acme = _docs(tmp_path / "acme", "Octal literals start with 0o, as in 0o17.")
    beta = _docs(tmp_path / "beta", "Octal literals are written with a leading 0o prefix.")
    for tenant, folder in (("acme", acme), ("beta", beta)):
        result = runner.invoke(app, ["ingest", str(folder), "--tenant", tenant, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["ingested"] == 2

    from ragloom.core.settings import load_settings
    from ragloom.graphs.assistant import build_assistant
    from ragloom.runtime import open_store

    settings = load_settings()
    with open_store(settings) as store:
        for tenant, expected in (("acme", "0o17"), ("beta", "leading 0o prefix")):
            graph = build_assistant(settings, store=store, tenant=tenant)
            out = graph.invoke(
                {"question": "How do I write octal literals?"},
                {"configurable": {"thread_id": tenant}},
            )
            assert expected in out["answer"]
            assert out["citations"][0]["source"] == f"{tenant}/numbers.md"  # relative to cwd
