"""The HTTP server: ask, streamed ask (SSE), thread history."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from langgraph.checkpoint.memory import InMemorySaver

from ragloom.graphs.assistant import build_assistant_graph
from ragloom.graphs.assistant_state import AssistantDeps
from ragloom.server import create_app
from tests.graphs.fakes import ListStore, Script, sample_chunks, scripted_roles


def _client() -> TestClient:
    context = AssistantDeps(
        store=ListStore(sample_chunks()), roles=scripted_roles(Script(rewrites=["octal literals"]))
    )
    return TestClient(create_app(build_assistant_graph(context, checkpointer=InMemorySaver())))


def test_ask_and_thread_history(tmp_path: Path) -> None:
    client = _client()
    reply = client.post("/v1/ask", json={"question": "octal?", "thread_id": "h1"})
    assert reply.status_code == 200
    body = reply.json()
    assert body["citations"][0]["chunk_id"] == "c0" and body["thread_id"] == "h1"
    history = client.get("/v1/threads/h1").json()["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"]


def test_stream_sends_nodes_then_final() -> None:
    with _client().stream("POST", "/v1/ask/stream", json={"question": "octal?"}) as reply:
        text = "".join(reply.iter_text())
    events = [block.split("\n")[0].removeprefix("event: ") for block in text.strip().split("\n\n")]
    assert events[0] == "node" and events[-1] == "final"
    final = json.loads(text.strip().split("\n\n")[-1].split("data: ", 1)[1])
    assert final["citations"] and final["thread_id"].startswith("http-")


def test_empty_question_is_rejected() -> None:
    assert _client().post("/v1/ask", json={"question": ""}).status_code == 422
