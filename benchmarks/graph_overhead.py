"""Assistant graph overhead: the real graph with instant fakes vs a raw LangGraph graph of the
same topology whose nodes do nothing. Prints JSON.

    python benchmarks/graph_overhead.py [--runs 2000] [--postgres-url URL]

With `--postgres-url` (or RAGLOOM_TEST_POSTGRES_URL) the pooled PostgreSQL saver of
`ragloom.graphs.checkpointers` is measured too (sync path: its ConnectionPool).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from ragloom.core.logging import configure_logging
from ragloom.graphs.assistant import build_assistant_graph
from ragloom.graphs.assistant_state import AssistantDeps
from tests.graphs.fakes import ListStore, Script, sample_chunks, scripted_roles

PATH = ["start_turn", "route", "rewrite_query", "retrieve", "grade_documents",
        "generate_answer", "check_grounding", "finalize"]


class RawState(TypedDict, total=False):
    question: str
    answer: str
    steps: int


def raw_graph(checkpointer: Any) -> Any:
    """The same happy-path topology (8 nodes, 4 routers) with nodes that only count steps."""
    builder = StateGraph(RawState)
    for name in [*PATH, "conversation", "decline", "summarize"]:
        builder.add_node(name, lambda s: {"steps": s.get("steps", 0) + 1})
    builder.add_edge(START, "start_turn")
    builder.add_edge("start_turn", "route")
    builder.add_conditional_edges("route", lambda s: "rewrite_query",
                                  ["conversation", "decline", "summarize", "rewrite_query"])
    for name in ("conversation", "decline", "summarize"):
        builder.add_edge(name, "finalize")
    builder.add_conditional_edges("rewrite_query", lambda s: "retrieve",
                                  ["retrieve", "generate_answer"])
    builder.add_edge("retrieve", "grade_documents")
    builder.add_conditional_edges("grade_documents", lambda s: "generate_answer",
                                  ["generate_answer", "rewrite_query"])
    builder.add_edge("generate_answer", "check_grounding")
    builder.add_conditional_edges("check_grounding", lambda s: "finalize",
                                  ["generate_answer", "finalize"])
    builder.add_edge("finalize", END)
    return builder.compile(checkpointer=checkpointer)


def ragloom_graph(checkpointer: Any) -> Any:
    context = AssistantDeps(store=ListStore(sample_chunks()),
                               roles=scripted_roles(Script(rewrites=["octal literals"])))
    return build_assistant_graph(context, checkpointer=checkpointer)


def _one(graph: Any, i: int, threaded: bool) -> float:
    config = {"configurable": {"thread_id": f"t{i}"}} if threaded else {}
    started = time.perf_counter()
    graph.invoke({"question": "How do I write octal literals?"}, config)
    return time.perf_counter() - started


def interleaved_ms(first: Any, second: Any, runs: int, threaded: bool) -> tuple[float, float]:
    """Median ms per invoke of two graphs run alternately, so both see the same machine noise."""
    a, b = [], []
    for i in range(runs):
        a.append(_one(first, i, threaded))
        b.append(_one(second, i, threaded))
    return statistics.median(a) * 1000, statistics.median(b) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--postgres-url", default=os.environ.get("RAGLOOM_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    # the product's log line per answer stays on, as JSON, as in a deployed app
    configure_logging(level="INFO", fmt="json", stream=open(os.devnull, "w"))  # noqa: SIM115
    result: dict[str, Any] = {"runs": args.runs, "nodes_per_invoke": len(PATH)}
    savers: list[tuple[str, Any]] = [("no_checkpointer", None), ("in_memory_saver", InMemorySaver)]
    if args.postgres_url:
        from ragloom.core.settings import CheckpointerSettings
        from ragloom.graphs.checkpointers import build_checkpointer

        settings = CheckpointerSettings(kind="postgres", postgres_url=args.postgres_url)
        savers.append(("postgres_pooled_saver", lambda: build_checkpointer(settings)))
    for label, saver in savers:
        raw = raw_graph(saver() if saver else None)
        ours = ragloom_graph(saver() if saver else None)
        interleaved_ms(raw, ours, 50, saver is not None)  # warm up
        raw_ms, ours_ms = interleaved_ms(raw, ours, args.runs, saver is not None)
        result[label] = {
            "raw_langgraph_ms": round(raw_ms, 3),
            "ragloom_ms": round(ours_ms, 3),
            "ratio": round(ours_ms / raw_ms, 3),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
