"""`langgraph.json` names graph factories that LangGraph's tooling can load."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["assistant", "summarizer"])
def test_langgraph_json_entries_build_graphs(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAGLOOM_EMBEDDER__KIND", "hashing")
    monkeypatch.setenv("RAGLOOM_STORE__PATH", str(tmp_path / "store.db"))
    spec = json.loads((REPO / "langgraph.json").read_text())["graphs"][name]
    path, _, factory = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location(f"lg_{name}", REPO / path)
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    monkeypatch.setitem(sys.modules, module_spec.name, module)  # as LangGraph's loader does
    module_spec.loader.exec_module(module)
    from ragloom.graphs.wiring import platform_wiring

    platform_wiring.cache_clear()
    made = getattr(module, factory)()
    assert asyncio.iscoroutine(made)  # async: opening the store runs off the event loop
    graph = asyncio.run(made)
    platform_wiring.cache_clear()
    assert graph.checkpointer is None  # the LangGraph server brings its own
    assert "__start__" in graph.get_graph().nodes
