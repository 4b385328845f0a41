"""`ragloom ingest / search / sources` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragloom.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGLOOM_EMBEDDER__KIND", "hashing")


def _docs(root: Path) -> Path:
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "owls.md").write_text("# Owls\n\nOwls hunt mice at night.\n")
    (root / "herons.txt").write_text("Herons wade in shallow water for fish.\n")
    (root / "bad.bin").write_bytes(b"\x00\x01")
    return root


def test_ingest_search_sources(tmp_path: Path) -> None:
    docs = _docs(tmp_path / "docs")
    result = runner.invoke(app, ["ingest", str(docs), "--json", "--chunk-tokens", "64"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["ingested"], len(report["failed"])) == (2, 1)
    assert report["failed"][0]["code"] == "unsupported_file"
    assert Path(".ragloom/store.db").exists()

    again = runner.invoke(app, ["ingest", str(docs)])
    assert again.exit_code == 0
    assert "skipped (unchanged) 2" in again.output and "unsupported_file" in again.output

    found = runner.invoke(app, ["search", "owls hunting mice", "--json", "--k", "1",
                                "--mode", "bm25"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout)
    assert [h["source"] for h in hits] == ["lib/owls.md"]
    assert hits[0]["heading_path"] == ["Owls"]

    filtered = runner.invoke(app, ["search", "owls herons", "--json", "--filter", "path:lib/"])
    assert {h["source"] for h in json.loads(filtered.stdout)} == {"lib/owls.md"}

    table = runner.invoke(app, ["search", "herons", "--alpha", "0.3"])
    assert table.exit_code == 0 and "herons.txt" in table.output

    listed = runner.invoke(app, ["sources", "--json"])
    assert set(json.loads(listed.stdout)) == {"lib/owls.md", "herons.txt"}
    plain = runner.invoke(app, ["sources"])
    assert "2 sources" in plain.output


def test_tenant_and_store_options(tmp_path: Path) -> None:
    docs = _docs(tmp_path / "docs")
    store = tmp_path / "elsewhere.db"
    assert runner.invoke(app, ["ingest", str(docs), "--store", str(store), "--tenant", "t1",
                               "--json"]).exit_code == 0
    assert json.loads(runner.invoke(app, ["sources", "--store", str(store), "--json"]).stdout) == {}
    in_tenant = runner.invoke(app, ["sources", "--store", str(store), "--tenant", "t1", "--json"])
    assert len(json.loads(in_tenant.stdout)) == 2


def test_bad_filter_is_a_clean_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", "x", "--filter", "colour:red"])
    assert result.exit_code == 1
    assert "unknown filter key" in result.output
