"""The repo's `langgraph.json` under LangGraph's own server (`langgraph dev`, in-memory runtime),
driven by `langgraph-sdk` as Studio, Agent Chat UI and apps drive it: threads, messages input,
streaming (`values`, `updates`, `messages-tuple`), continuing a thread, reading its state, and
an interrupt/resume round trip. Offline, loopback only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragloom.core.testing.embedders import HashingEmbedder
from ragloom.tools.ingest.pipeline import ingest_paths
from ragloom.tools.stores.embedded import EmbeddedStore

REPO = Path(__file__).resolve().parents[2]
LANGGRAPH = Path(sys.executable).with_name("langgraph")
QUESTION = "How do I write an octal literal?"



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("langgraph-dev")
    docs = root / "docs"
    docs.mkdir()
    (docs / "numbers.md").write_text(
        "# Numbers\n\nTo write an octal literal, prefix the digits with 0o, as in 0o17. "
        "Hexadecimal literals use the prefix 0x, as in 0xff.\n"
    )
    (docs / "strings.md").write_text("# Strings\n\nStrings are immutable sequences of text.\n")
    with EmbeddedStore(root / "store.db", HashingEmbedder(384)) as store:
        ingest_paths([docs], store, root=root, progress=False)
    config = json.loads((REPO / "langgraph.json").read_text())  # the repo's, paths made absolute
    config["graphs"] = {
        name: str(REPO / spec.removeprefix("./")) for name, spec in config["graphs"].items()
    }
    config["dependencies"] = [str(REPO)]
    config.pop("env", None)
    (root / "langgraph.json").write_text(json.dumps(config))
    port = _free_port()
    env = {
        **os.environ,
        "RAGLOOM_EMBEDDER__KIND": "hashing",
        "RAGLOOM_STORE__PATH": str(root / "store.db"),
        "RAGLOOM_LOG_LEVEL": "WARNING",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGSMITH_TRACING": "false",
    }
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [str(LANGGRAPH), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1",
         "--port", str(port), "--config", str(root / "langgraph.json")],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail("langgraph dev exited:\n" + (root / "server.log").read_text()[-4000:])
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            tail = (root / "server.log").read_text()[-4000:]
            pytest.fail(f"langgraph dev did not start:\n{tail}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _last_ai(values: dict[str, Any]) -> dict[str, Any]:
    messages = values["messages"]
    assert messages[-1]["type"] == "ai"
    return dict(messages[-1])


def test_sdk_threads_messages_streaming_and_state(server_url: str) -> None:
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server_url)
    assistants = {a["graph_id"]: a for a in client.assistants.search()}
    assert {"assistant", "summarizer"} <= set(assistants)
    schemas = client.assistants.get_schemas(assistants["assistant"]["assistant_id"])
    assert "messages" in schemas["input_schema"]["properties"]

    thread = client.threads.create()
    first = client.runs.wait(
        thread["thread_id"], "assistant",
        input={"messages": [{"role": "user", "content": QUESTION}]},
    )  # fmt: skip
    reply = _last_ai(first)  # type: ignore[arg-type]
    assert "0o" in reply["content"]
    cited = reply["response_metadata"]["citations"]
    assert cited and cited[0]["source"].endswith("numbers.md")

    modes: dict[str, int] = {}
    streamed_ai = ""
    for part in client.runs.stream(
        thread["thread_id"], "assistant",
        input={"messages": [{"role": "user", "content": "and hexadecimal literals?"}]},
        stream_mode=["values", "updates", "messages-tuple"],
    ):  # fmt: skip
        modes[part.event] = modes.get(part.event, 0) + 1
        if part.event == "messages":
            message, _meta = part.data
            if message.get("type", "").startswith("ai"):
                streamed_ai += str(message.get("content") or "")
    assert {"values", "updates", "messages"} <= set(modes), modes
    assert "0x" in streamed_ai and "[[ ##" not in streamed_ai

    state = client.threads.get_state(thread["thread_id"])
    kinds = [m["type"] for m in state["values"]["messages"]]
    assert kinds == ["human", "ai", "human", "ai"]


def test_sdk_interrupt_and_resume(server_url: str) -> None:
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server_url)
    thread = client.threads.create()
    client.runs.wait(
        thread["thread_id"], "assistant",
        input={"messages": [{"role": "user", "content": QUESTION}]},
        context={"review": ["answer"]},
    )  # fmt: skip
    paused = client.threads.get_state(thread["thread_id"])
    assert paused["next"] == ["finalize"]
    interrupts = [i for task in paused["tasks"] for i in task.get("interrupts", [])]
    assert interrupts and interrupts[0]["value"]["review"] == "answer"
    assert "0o" in interrupts[0]["value"]["draft"]["text"]

    done = client.runs.wait(
        thread["thread_id"], "assistant",
        command={"resume": {"action": "edit", "value": "Use the 0o prefix [1]."}},
        context={"review": ["answer"]},
    )  # fmt: skip
    reply = _last_ai(done)  # type: ignore[arg-type]
    assert reply["content"] == "Use the 0o prefix [1]."
    assert reply["response_metadata"]["citations"]
