"""Threads as LangGraph users meet them: messages input, review points (`interrupt()` and
`Command(resume=...)`), a turn killed mid-way, bounded checkpoints, per-run context as a dict."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from ragloom.graphs.assistant import DECLINE, build_assistant_graph
from ragloom.graphs.assistant_state import AssistantContext, AssistantDeps
from ragloom.graphs.checkpointers import ThreadSqliteSaver
from tests.graphs.fakes import ListStore, Script, sample_chunks, scripted_roles

REPO = Path(__file__).resolve().parents[2]


def _graph(script: Script, store: ListStore | None = None, **deps: object):
    context = AssistantDeps(
        store=store or ListStore(sample_chunks()), roles=scripted_roles(script), **deps  # type: ignore[arg-type]
    )
    return build_assistant_graph(context, checkpointer=InMemorySaver())


def _config(thread: str) -> dict:
    return {"configurable": {"thread_id": thread}}


def test_messages_input_and_an_ai_message_with_structured_citations() -> None:
    graph = _graph(Script(rewrites=["octal literals"]))
    out = graph.invoke({"messages": [("user", "How do I write octal numbers?")]}, _config("m"))
    reply = out["messages"][-1]
    assert reply.type == "ai" and reply.content == out["answer"]
    assert reply.response_metadata["citations"] == out["citations"]
    assert reply.response_metadata["engine"] == "scripted"
    state = graph.get_state(_config("m")).values
    assert [m.type for m in state["messages"]] == ["human", "ai"]
    assert state["messages"][0].content == "How do I write octal numbers?"
    schema = graph.get_input_jsonschema()
    assert {"messages", "question"} <= set(schema["properties"])


def test_review_the_query_then_resume_with_an_edit() -> None:
    store = ListStore(sample_chunks())
    graph = _graph(Script(rewrites=["nothing useful"]), store)
    config = _config("r1")
    paused = graph.invoke(
        {"question": "octal?"}, config, context=AssistantContext(review=["query"])
    )
    (pending,) = paused["__interrupt__"]
    assert pending.value["review"] == "query" and pending.value["query"] == "nothing useful"
    assert graph.get_state(config).next == ("retrieve",)
    done = graph.invoke(
        Command(resume={"action": "edit", "value": "octal literals"}), config,
        context={"review": ["query"]},
    )  # fmt: skip
    assert store.searches[-1] == "octal literals"
    assert done["citations"] and done["answer"].startswith("Octal literals")


def test_review_passages_and_answer() -> None:
    graph = _graph(Script(rewrites=["octal literals"]))
    config = _config("r2")
    review = {"review": ["passages", "answer"]}
    first = graph.invoke({"question": "octal?"}, config, context=review)
    assert first["__interrupt__"][0].value["review"] == "passages"
    ids = [p["id"] for p in first["__interrupt__"][0].value["passages"]]
    second = graph.invoke(Command(resume={"action": "approve"}), config, context=review)
    assert second["__interrupt__"][0].value["review"] == "answer"
    assert second["__interrupt__"][0].value["draft"]["citations"][0]["chunk_id"] in ids
    done = graph.invoke(Command(resume="Use 0o [1]."), config, context=review)
    assert done["answer"] == "Use 0o [1]." and done["citations"]


def test_clarify_asks_the_user_once_when_nothing_is_relevant() -> None:
    store = ListStore(sample_chunks())
    graph = _graph(Script(rewrites=["zzz", "yyy", "xxx", "www"], relevant_after=99), store)
    config = _config("c1")
    paused = graph.invoke({"question": "numbers?"}, config, context={"review": ["clarify"]})
    assert paused["__interrupt__"][0].value["review"] == "clarify"
    done = graph.invoke(Command(resume="octal literals"), config, context={"review": ["clarify"]})
    assert "__interrupt__" not in done  # asked once, then answered with a caveat
    assert done["caveat"]
    assert graph.get_state(config).values["question"] == ""  # the turn closed


KILLED_TURN = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {repo!r})
    from ragloom.graphs.assistant import build_assistant_graph
    from ragloom.graphs.assistant_state import AssistantDeps
    from ragloom.graphs.checkpointers import ThreadSqliteSaver
    from tests.graphs.fakes import ListStore, Script, ScriptedRoles, sample_chunks, scripted_roles

    class Stuck(ScriptedRoles):
        def answer(self, *args):
            open(sys.argv[2], "w").write("answering")
            time.sleep(120)

    roles = scripted_roles(Script(rewrites=["octal literals"]))
    roles.answerer = Stuck(Script())
    deps = AssistantDeps(store=ListStore(sample_chunks()), roles=roles)
    graph = build_assistant_graph(deps, checkpointer=ThreadSqliteSaver.from_path(sys.argv[1]))
    graph.invoke({{"question": "the question that never got an answer"}},
                 {{"configurable": {{"thread_id": "crash"}}}})
    """
)


def test_a_turn_killed_mid_way_leaves_no_dangling_question(tmp_path: Path) -> None:
    db, marker, script = tmp_path / "threads.db", tmp_path / "answering", tmp_path / "turn.py"
    script.write_text(KILLED_TURN.format(repo=str(REPO)))
    proc = subprocess.Popen([sys.executable, str(script), str(db), str(marker)], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), "the turn never reached the answer step"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    saver = ThreadSqliteSaver.from_path(db)
    deps = AssistantDeps(store=ListStore(sample_chunks()),
                         roles=scripted_roles(Script(rewrites=["octal literals"])))  # fmt: skip
    graph = build_assistant_graph(deps, checkpointer=saver)
    config = _config("crash")
    before = graph.get_state(config).values["messages"]
    assert [m.type for m in before] == ["human"]  # the crash left the question unanswered
    out = graph.invoke({"question": "octal?"}, config)
    messages = graph.get_state(config).values["messages"]
    assert [m.type for m in messages] == ["human", "ai"]
    assert messages[0].content == "octal?" and out["citations"]
    saver.conn.close()


def test_threads_stay_bounded() -> None:
    graph = _graph(Script(rewrites=["octal literals"]), max_messages=6)
    config = _config("long")
    for i in range(8):
        graph.invoke({"question": f"octal? ({i})"}, config)
    messages = graph.get_state(config).values["messages"]
    assert len(messages) <= 6 and isinstance(messages[0], HumanMessage)
    assert messages[-2].content == "octal? (7)"


def test_empty_question_declines_and_context_tenant_is_used() -> None:
    store = ListStore(sample_chunks())
    seen: list[str | None] = []
    search = store.search

    def spy(query, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(kwargs.get("tenant"))
        return search(query, **kwargs)

    store.search = spy  # type: ignore[method-assign]
    graph = _graph(Script(rewrites=["octal literals"]), store)
    assert graph.invoke({"question": "  "}, _config("e"))["answer"] == DECLINE
    graph.invoke({"question": "octal?"}, _config("t"), context={"tenant": "acme"})
    assert seen and set(seen) == {"acme"}


def test_an_empty_store_is_named_in_the_caveat() -> None:
    out = _graph(Script(rewrites=["octal"]), ListStore([])).invoke({"question": "octal?"},
                                                                   _config("empty"))
    assert out["citations"] == [] and "no documents to search" in (out["caveat"] or "")
