"""`ragloom ingest / search / sources` through Typer's CliRunner."""

from __future__ import annotations

import json
import os
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
    return root


def test_ingest_search_sources(tmp_path: Path) -> None:
    docs = _docs(tmp_path / "docs")  # the current directory is tmp_path
    result = runner.invoke(app, ["ingest", "docs", "--json", "--chunk-tokens", "64"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["ingested"], report["failed"], report["exit_code"]) == (2, [], 0)
    assert Path(".ragloom/store.db").exists()

    again = runner.invoke(app, ["ingest", str(docs)])  # absolute spelling: the same sources
    assert again.exit_code == 0
    assert "skipped (unchanged) 2" in again.output and "ingested 0" in again.output

    found = runner.invoke(app, ["search", "owls hunting mice", "--json", "--k", "1",
                                "--mode", "bm25"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout)
    assert [h["source"] for h in hits] == ["docs/lib/owls.md"]
    assert hits[0]["heading_path"] == ["Owls"]

    # the documented filter: `ingest docs/` then `--filter path:docs/`
    everything = runner.invoke(app, ["search", "owls herons", "--json", "--filter", "path:docs/"])
    assert {h["source"] for h in json.loads(everything.stdout)} == {
        "docs/lib/owls.md", "docs/herons.txt",
    }
    filtered = runner.invoke(
        app, ["search", "owls herons", "--json", "--filter", "path:docs/lib/"]
    )
    assert {h["source"] for h in json.loads(filtered.stdout)} == {"docs/lib/owls.md"}

    table = runner.invoke(app, ["search", "herons", "--alpha", "0.3"])
    assert table.exit_code == 0 and "docs/herons.txt" in table.output

    listed = runner.invoke(app, ["sources", "--json"])
    assert set(json.loads(listed.stdout)) == {"docs/lib/owls.md", "docs/herons.txt"}
    plain = runner.invoke(app, ["sources"])
    assert "2 sources" in plain.output


def test_root_option_names_sources_relative_to_it(tmp_path: Path) -> None:
    _docs(tmp_path / "docs")
    result = runner.invoke(app, ["ingest", "docs", "--root", "docs", "--json"])
    assert result.exit_code == 0, result.output
    listed = runner.invoke(app, ["sources", "--json"])
    assert set(json.loads(listed.stdout)) == {"lib/owls.md", "herons.txt"}
    bad_root = runner.invoke(app, ["ingest", "docs", "--root", "nowhere"])
    assert bad_root.exit_code == 1 and "is not a folder" in bad_root.output


def test_exit_status_says_whether_files_failed(tmp_path: Path) -> None:
    docs = _docs(tmp_path / "docs")
    (docs / "bad.bin").write_bytes(b"\x00\x01")
    partial = runner.invoke(app, ["ingest", "docs", "--json"])
    assert partial.exit_code == 2, partial.output
    report = json.loads(partial.stdout)
    assert (report["ingested"], report["exit_code"]) == (2, 2)
    assert [f["code"] for f in report["failed"]] == ["unsupported_file"]

    again = runner.invoke(app, ["ingest", "docs"])  # unchanged files still count as good
    assert again.exit_code == 2
    assert "skipped (unchanged) 2" in again.output and "unsupported_file" in again.output
    assert "exit status 2" in again.output

    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_bytes(b"\xff\xfe\x00")
    nothing = runner.invoke(app, ["ingest", "junk"])
    assert nothing.exit_code == 1 and "decode_error" in nothing.output
    missing = runner.invoke(app, ["ingest", "no-such-folder", "--json"])
    assert missing.exit_code == 1
    assert json.loads(missing.stdout)["failed"][0]["reason"] == "no such file"


def test_spellings_and_prune_through_the_cli(tmp_path: Path) -> None:
    docs = _docs(tmp_path / "docs")
    (docs / "lib" / "index.md").write_text("# Lib index\n\nThe library.\n")
    (docs / "index.md").write_text("# Top index\n\nThe top.\n")
    first = runner.invoke(app, ["ingest", "./docs", "--json"])
    assert json.loads(first.stdout)["ingested"] == 4  # both index.md survive
    for spelling in ("docs/", str(docs), "docs/../docs", "./docs/lib/.."):
        out = runner.invoke(app, ["ingest", spelling, "--prune", "--json"])
        report = json.loads(out.stdout)
        assert (report["skipped_unchanged"], report["removed"], report["ingested"]) == (4, 0, 0)
    (docs / "lib" / "index.md").unlink()
    pruned = runner.invoke(app, ["ingest", str(docs) + "/", "--prune", "--json"])
    assert json.loads(pruned.stdout)["removed"] == 1
    listed = json.loads(runner.invoke(app, ["sources", "--json"]).stdout)
    assert set(listed) == {"docs/index.md", "docs/lib/owls.md", "docs/herons.txt"}


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
    assert "error: [config]" in result.output  # the code is printed, not eaten as markup


@pytest.mark.parametrize("text", ["[/x]", "[bold]", "[red]x[/red]", "[/]", "a[b]c"])
def test_square_brackets_in_a_filter_are_plain_text(tmp_path: Path, text: str) -> None:
    result = runner.invoke(app, ["search", "x", "--filter", text])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "MarkupError" not in result.output
    assert f"bad filter term '{text}'" in result.output


def test_bracketed_file_names_ingest_and_fail_as_plain_text(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "[").mkdir(parents=True)
    (docs / "[/x]good.md").write_text("# Good\n\nGood text about brackets.\n")
    (docs / "[bold]bad[").mkdir()
    (docs / "[bold]bad[/].txt").write_bytes(b"\x00\x01\x02")
    (docs / "[red]fine[b].txt").write_text("Red herons are fine.\n")
    result = runner.invoke(app, ["ingest", "docs"])  # progress bar, summary and failure table
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "docs/[bold]bad[/].txt" in result.output and "decode_error" in result.output
    listed = json.loads(runner.invoke(app, ["sources", "--json"]).stdout)
    assert set(listed) == {"docs/[/x]good.md", "docs/[red]fine[b].txt"}
    table = runner.invoke(app, ["search", "herons brackets", "--mode", "bm25"])
    assert table.exit_code == 0, table.output
    assert "[red]fine" in table.output  # rich would have eaten "[red]" as a style


def test_progress_bar_shows_bracketed_names_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crash was in the live progress bar, which only renders on a terminal."""
    import io

    import rich
    from rich.console import Console

    from ragloom.core.testing import HashingEmbedder
    from ragloom.tools.ingest import ingest_paths
    from ragloom.tools.stores.embedded import EmbeddedStore

    (tmp_path / "[").mkdir()
    (tmp_path / "[" / "x]good.md").write_text("# Good\n\nText.\n")
    screen = io.StringIO()
    monkeypatch.setattr(rich, "_console", Console(file=screen, force_terminal=True, width=120))
    with EmbeddedStore(tmp_path / "s.db", HashingEmbedder(32)) as store:
        report = ingest_paths([tmp_path / "["], store, progress=True)
    assert report.ingested == 1 and report.failed == []
    assert "[/x]good.md" in screen.getvalue()
    assert os.path.basename(report.root) == tmp_path.name


def test_ask_prints_bracketed_sources_and_thread_ids_as_plain_text(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "[").mkdir(parents=True)
    (docs / "[/x]octal.md").write_text(
        "# Octal\n\nOctal literals start with 0o, for example 0o17 is fifteen.\n"
    )
    assert runner.invoke(app, ["ingest", "docs"]).exit_code == 0
    result = runner.invoke(app, ["ask", "How do octal literals start?", "--thread", "[/t]"])
    assert result.exit_code == 0, result.output
    assert "docs/[/x]octal.md" in result.output
    chat = runner.invoke(app, ["chat", "--thread", "[/t]"], input="\n")
    assert chat.exit_code == 0, chat.output
    assert "thread [/t]" in chat.output


def test_ingest_says_when_the_store_has_old_style_ids(tmp_path: Path) -> None:
    import sqlite3

    _docs(tmp_path / "docs")
    assert runner.invoke(app, ["ingest", "docs", "--root", "docs"]).exit_code == 0
    with sqlite3.connect(".ragloom/store.db") as conn:  # as the old pipeline wrote them
        conn.execute("UPDATE chunks SET metadata = json_remove(metadata, '$.path')")
    plain = runner.invoke(app, ["ingest", "docs"])
    assert plain.exit_code == 0, plain.output
    assert "note: this store holds sources ingested before stable source ids" in plain.output
    assert "old-style ids" in plain.output and "--prune" in plain.output
    pruned = runner.invoke(app, ["ingest", "docs/", "--prune", "--json"])
    report = json.loads(pruned.stdout)
    assert report["removed"] == 2 and report["old_style"] == 2
    listed = json.loads(runner.invoke(app, ["sources", "--json"]).stdout)
    assert set(listed) == {"docs/lib/owls.md", "docs/herons.txt"}
    quiet = runner.invoke(app, ["ingest", "docs", "--json"])
    assert json.loads(quiet.stdout)["notes"] == []


def test_search_on_an_empty_store_or_unknown_tenant_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from ragloom.cli import app

    monkeypatch.setenv("RAGLOOM_EMBEDDER__KIND", "hashing")
    monkeypatch.setenv("RAGLOOM_STORE__PATH", str(tmp_path / "empty.db"))
    result = CliRunner().invoke(app, ["search", "anything", "--tenant", "nobody"])
    assert result.exit_code == 0
    assert "tenant 'nobody' has no documents" in result.stderr
