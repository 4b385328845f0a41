"""The assistant state machine's control flow, with scripted roles (no model, no store)."""

from __future__ import annotations

import asyncio

from langgraph.checkpoint.memory import InMemorySaver

from ragloom.core.settings import BudgetSettings
from ragloom.graphs.assistant import build_assistant_graph
from ragloom.graphs.assistant_state import AssistantDeps
from tests.graphs.fakes import ListStore, Script, sample_chunks, scripted_roles


def _graph(script: Script, **ctx: object):
    roles = scripted_roles(script)
    context = AssistantDeps(store=ListStore(sample_chunks()), roles=roles, **ctx)  # type: ignore[arg-type]
    return build_assistant_graph(context, checkpointer=InMemorySaver())


def _ask(graph, question: str, thread: str = "t1") -> dict:
    return graph.invoke({"question": question}, {"configurable": {"thread_id": thread}})


def test_happy_path_answers_with_citation() -> None:
    script = Script(rewrites=["octal literals"])
    out = _ask(_graph(script), "How do I write octal numbers?")
    assert out["answer"].startswith("Octal literals start with 0o.")
    assert [c["chunk_id"] for c in out["citations"]] == ["c0"]
    assert out["caveat"] is None
    assert sorted(script.calls[:2]) == ["rewrite", "route"]  # one round trip, side by side
    assert script.calls[2:] == ["grade", "answer", "check"]


def test_corrective_loop_rewrites_until_relevant() -> None:
    script = Script(rewrites=["hex", "octal literals"], relevant_after=1)
    out = _ask(_graph(script), "octal?")
    assert script.calls.count("rewrite") == 2
    assert script.calls.count("grade") == 2
    assert out["caveat"] is None and out["citations"]


def test_no_progress_stops_with_caveat() -> None:
    script = Script(rewrites=["octal literals"], relevant_after=99)
    out = _ask(_graph(script, budget=BudgetSettings(max_rewrites=5)), "octal?")
    assert "progress" in out["caveat"]
    assert script.calls.count("rewrite") == 2  # the repeated query is caught before retrieving


def test_budget_stops_with_caveat_not_recursion_error() -> None:
    script = Script(rewrites=[f"q{i} octal" for i in range(50)], relevant_after=99)
    out = _ask(_graph(script, budget=BudgetSettings(max_steps=6, max_rewrites=50)), "octal?")
    assert "steps budget" in out["caveat"]
    # the loop stops at its next check past the limit (at most retrieve + grade later);
    # answering then adds generate_answer, check_grounding and finalize
    assert out["usage"]["steps"] <= 6 + 5


def test_ungrounded_answer_is_regenerated_once() -> None:
    script = Script(rewrites=["octal literals"], grounded_after=1)
    out = _ask(_graph(script), "octal?")
    assert script.calls.count("answer") == 2
    assert out["caveat"] is None


def test_still_ungrounded_drops_claims_with_caveat() -> None:
    script = Script(rewrites=["octal literals"], grounded_after=99)
    out = _ask(_graph(script), "octal?")
    assert script.calls.count("answer") == 2
    assert out["citations"] == []
    assert "verified" in out["caveat"]


def test_thread_keeps_history_and_async_path_matches() -> None:
    script = Script(rewrites=["octal literals"])
    graph = _graph(script)
    config = {"configurable": {"thread_id": "t9"}}
    first = asyncio.run(graph.ainvoke({"question": "octal?"}, config))
    second = graph.invoke({"question": "and hex?"}, config)
    assert first["answer"] == second["answer"]
    messages = graph.get_state(config).values["messages"]
    assert [m.type for m in messages] == ["human", "ai", "human", "ai"]


def test_decline_route() -> None:
    out = _ask(_graph(Script(route="decline")), "tell me a joke")
    assert "only answer questions" in out["answer"]
    assert out["citations"] == []
