"""The layering rule: core <- tools, prompts <- agents <- graphs <- ragloom, examples."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RANK = {"core": 0, "tools": 1, "prompts": 1, "agents": 2, "graphs": 3, "ragloom": 4}
FORBIDDEN_SIBLINGS = {("tools", "prompts"), ("prompts", "tools")}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _violations(package: str) -> list[str]:
    bad = []
    for path in sorted((REPO / package).rglob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            if top not in RANK or top == package:
                continue
            if RANK[top] > RANK[package] or (package, top) in FORBIDDEN_SIBLINGS:
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    return bad


@pytest.mark.parametrize("package", sorted(RANK))
def test_no_package_imports_a_layer_to_its_right(package: str) -> None:
    assert _violations(package) == []


def test_the_check_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "mod.py"
    bad.write_text("from graphs.assistant import build_assistant\nimport ragloom.cli\n")
    assert _imports(bad) == ["graphs.assistant", "ragloom.cli"]
