"""The layering rule: core <- tools, prompts <- agents <- graphs <- ragloom <- examples, benchmarks.

Every folder installs under one namespace (`ragloom.core`, ... `ragloom.graphs`, and `ragloom`'s
own modules), so imports are spelled `ragloom.…`. Bare `core`/`tools`/`agents`/`prompts`/`graphs`
imports are refused everywhere in the repo: the bare names belong to users and other packages
(the `graphs` alias is for users; nothing of ours imports it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("core", "tools", "prompts", "agents", "graphs")
RANK = {"core": 0, "tools": 1, "prompts": 1, "agents": 2, "graphs": 3, "ragloom": 4,
        "examples": 5, "benchmarks": 5}
FORBIDDEN_SIBLINGS = {("tools", "prompts"), ("prompts", "tools")}
BARE = {*LAYERS}
ALIAS_TESTS = {"test_user_project.py", "test_packaging.py", "test_wiring.py"}  # test the alias


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _layer(name: str) -> str | None:
    """The layer an absolute import name belongs to (None: not ours)."""
    parts = name.split(".")
    if parts[0] != "ragloom":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "ragloom"


def _violations(folder: str) -> list[str]:
    bad = []
    for path in sorted((REPO / folder).rglob("*.py")):
        where = path.relative_to(REPO)
        for name in _imports(path):
            if name.split(".")[0] in BARE:
                bad.append(f"{where} imports bare {name}")
                continue
            layer = _layer(name)
            if layer is None or layer == folder:
                continue
            if RANK[layer] > RANK[folder] or (folder, layer) in FORBIDDEN_SIBLINGS:
                bad.append(f"{where} imports {name}")
    return bad


@pytest.mark.parametrize("folder", sorted(RANK))
def test_no_folder_imports_a_layer_to_its_right(folder: str) -> None:
    assert _violations(folder) == []


def test_tests_import_the_namespace_not_bare_names() -> None:
    bare = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in sorted((REPO / "tests").rglob("*.py"))
        for name in _imports(path)
        if name.split(".")[0] in BARE and path.name not in ALIAS_TESTS
    ]
    assert bare == []


def test_the_check_catches_a_violation(tmp_path: Path) -> None:
    (tmp_path / "core").mkdir()
    bad = tmp_path / "core" / "mod.py"
    bad.write_text("from ragloom.graphs.assistant import build_assistant\nimport agents.roles\n")
    assert _imports(bad) == ["ragloom.graphs.assistant", "agents.roles"]
    assert _layer("ragloom.graphs.assistant") == "graphs"
    assert _layer("ragloom.cli") == "ragloom"
