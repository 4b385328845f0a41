"""The reranker stage: after fusion, before grading, under invoke and ainvoke."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from ragloom.core.documents import Chunk
from ragloom.core.settings import RetrievalSettings, load_settings
from ragloom.graphs.assistant import build_assistant_graph
from ragloom.graphs.assistant_state import AssistantDeps
from ragloom.tools.rerank import SemanticReranker
from tests.graphs.fakes import ListStore, Script, scripted_roles


class Reverse:
    """Puts the fused order backwards; records what it saw."""

    name = "reverse"

    def __init__(self) -> None:
        self.seen: list[tuple[str, list[str]]] = []

    def rerank(self, query: str, chunks: Sequence[Chunk]) -> list[Chunk]:
        self.seen.append((query, [c.id for c in chunks]))
        return list(reversed(chunks))


def _chunks(n: int) -> list[Chunk]:
    # more "octal" words = a higher ListStore score, so the fused order is c0, c1, ...
    return [Chunk(id=f"c{i}", source=f"s{i}.md", text="octal " * (n - i) + f"part {i}")
            for i in range(n)]


def _graph(reranker: Reverse | None, k: int, depth: int):
    store = ListStore(_chunks(8))
    deps = AssistantDeps(store=store, roles=scripted_roles(Script(rewrites=["octal"])),
                         retrieval=RetrievalSettings(k=k, rerank_depth=depth),
                         reranker=reranker)
    return build_assistant_graph(deps, checkpointer=InMemorySaver()), store


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_the_reranker_reorders_the_fused_depth_and_the_first_k_are_kept(mode: str) -> None:
    reverse = Reverse()
    graph, _ = _graph(reverse, k=2, depth=6)
    config = {"configurable": {"thread_id": "t"}}
    question = {"question": "What about octal?"}
    if mode == "invoke":
        out = graph.invoke(question, config)
    else:
        out = asyncio.run(graph.ainvoke(question, config))
    assert reverse.seen == [("octal", ["c0", "c1", "c2", "c3", "c4", "c5"])]
    state = graph.get_state(config).values
    assert [c["id"] for c in state["chunks"]] == ["c5", "c4"]  # reranked, then cut to k
    assert out["citations"]


def test_without_a_reranker_the_fused_order_and_k_stay() -> None:
    graph, _ = _graph(None, k=2, depth=6)
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"question": "What about octal?"}, config)
    assert [c["id"] for c in graph.get_state(config).values["chunks"]] == ["c0", "c1"]


def test_the_wiring_builds_the_configured_reranker(tmp_path) -> None:
    from ragloom.core.testing import HashingEmbedder
    from ragloom.graphs.wiring import Wiring

    store = ListStore(_chunks(3))
    store.embedder = HashingEmbedder(64)  # type: ignore[attr-defined]
    semantic = load_settings(engine="extractive", retrieval={"reranker": "semantic"},
                             store={"path": str(tmp_path / "s.db")})
    assert isinstance(Wiring(semantic, store=store).reranker, SemanticReranker)
    default = load_settings(engine="extractive", store={"path": str(tmp_path / "s.db")})
    assert Wiring(default, store=store).reranker is None


@pytest.mark.parametrize(("cap", "expected"), [
    (1, ["a0", "b0", "c0", "d0"]), (2, ["a0", "a1", "b0", "b1"]), (0, ["a0", "a1", "a2", "b0"]),
])
@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_no_source_fills_more_passages_than_its_cap(
    cap: int, expected: list[str], mode: str
) -> None:
    """Three chunks of a.md outscore everything; with a cap the k passages span more sources."""
    words = {"a": 12, "b": 8, "c": 5, "d": 3}
    chunks = [Chunk(id=f"{s}{i}", source=f"{s}.md", text="octal " * (n - i) + f"{s} part {i}")
              for s, n in words.items() for i in range(3)]
    store = ListStore(chunks)
    deps = AssistantDeps(store=store, roles=scripted_roles(Script(rewrites=["octal"])),
                         retrieval=RetrievalSettings(k=4, max_chunks_per_source=cap))
    graph = build_assistant_graph(deps, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    question = {"question": "What about octal?"}
    graph.invoke(question, config) if mode == "invoke" else asyncio.run(
        graph.ainvoke(question, config))
    assert [c["id"] for c in graph.get_state(config).values["chunks"]] == expected
