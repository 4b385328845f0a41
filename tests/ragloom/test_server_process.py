"""`ragloom serve` as a process: no secret leaves it; workers share PostgreSQL threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from ragloom.core.testing import Fault, OpenAICompatibleServer
from tests.graphs.test_checkpointers import postgres_url  # noqa: F401 - the shared fixture
from tests.ragloom.server_helpers import ACME_DOC, KEY_A, KEY_B, auth, free_port, wait_ready

PLANTED = "planted-provider-key-4f9a8b7c6d5e3a2b"
QUESTION = "How do I write octal literals?"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGLOOM_", "OPENAI_"))}
    env.update({
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "RAGLOOM_ENGINE": "extractive",
        "RAGLOOM_EMBEDDER__KIND": "hashing", "RAGLOOM_EMBEDDER__DIMENSIONS": "256",
        "RAGLOOM_STORE__PATH": str(tmp_path / "store.db"),
        "RAGLOOM_CHECKPOINTER__PATH": str(tmp_path / "threads.db"),
        "RAGLOOM_PROMPTS__COMPILED_DIR": str(tmp_path / "compiled"),
        "RAGLOOM_SERVER__API_KEYS": json.dumps([{"key": KEY_A, "tenant": "acme"},
                                                {"key": KEY_B, "tenant": "beta"}]),
        "RAGLOOM_LOG_FORMAT": "json", "RAGLOOM_LOG_LEVEL": "DEBUG",
    })  # fmt: skip
    env.update(extra)
    return env


@contextmanager
def serving(tmp_path: Path, env: dict[str, str], *args: str) -> Iterator[tuple[str, list[str]]]:
    """`python -m ragloom serve` on a free port; yields its URL and (after exit) its output."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ragloom", "serve", "--port", str(port), *args],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        output: list[str] = []
        try:
            wait_ready(f"http://127.0.0.1:{port}", timeout=120, process=process)
            yield f"http://127.0.0.1:{port}", output
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            output.append(log.read_text(errors="replace"))


def test_a_provider_401_echoing_the_key_never_leaves_the_server(tmp_path: Path) -> None:
    """The provider's error quotes the server's API key: no response and no log line has it."""
    echo = {"error": {"message": f"Incorrect API key provided: {PLANTED}",
                      "type": "invalid_request_error", "code": "invalid_api_key"}}

    def refuse(request: dict[str, Any]) -> Fault:
        return Fault(401, body=echo)

    with OpenAICompatibleServer(refuse) as provider:
        env = _env(tmp_path, RAGLOOM_ENGINE="openai", RAGLOOM_LLM__BASE_URL=provider.base_url,
                   RAGLOOM_LLM__API_KEY=PLANTED, RAGLOOM_LLM__MAX_RETRIES="0",
                   RAGLOOM_LLM__TIMEOUT="5")
        responses: list[str] = []
        with serving(tmp_path, env) as (url, output):
            with httpx.Client(base_url=url, headers=auth(KEY_A), timeout=60) as client:
                ask = client.post("/v1/ask", json={"question": QUESTION})
                chat = client.post("/v1/chat/completions", json={
                    "model": "ragloom-assistant", "messages": [{"role": "user", "content": "hi"}]})
                stream = client.post("/v1/ask/stream", json={"question": QUESTION})
                chat_stream = client.post("/v1/chat/completions", json={
                    "model": "ragloom-assistant", "stream": True,
                    "messages": [{"role": "user", "content": "hello"}]})  # fmt: skip
            for reply in (ask, chat):
                assert reply.status_code == 502, reply.text
                assert reply.json()["error"]["code"] == "auth"
            for reply in (stream, chat_stream):
                assert "event: error" in reply.text and '"code": "auth"' in reply.text
            responses = [r.text + json.dumps(dict(r.headers)) for r in (ask, chat, stream,
                                                                          chat_stream)]
        assert provider.requests and any(
            r.headers.get("Authorization") == f"Bearer {PLANTED}" for r in provider.requests
        )  # the key was really sent, and really echoed back
    captured = output[0]
    assert "server.error" in captured or "server.turn_failed" in captured  # it did log
    for text in [*responses, captured]:
        assert PLANTED not in text
        assert PLANTED[:20] not in text


def test_two_workers_continue_one_thread_through_postgres(
    tmp_path: Path, postgres_url: str  # noqa: F811
) -> None:
    env = _env(tmp_path, RAGLOOM_CHECKPOINTER__KIND="postgres",
               RAGLOOM_CHECKPOINTER__POSTGRES_URL=postgres_url)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "numbers.md").write_text(ACME_DOC)
    subprocess.run([sys.executable, "-m", "ragloom", "ingest", str(docs), "--root", str(docs),
                    "--tenant", "acme"],
                   cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120)
    thread = f"mw-{os.getpid()}"
    with serving(tmp_path, env, "--workers", "2") as (url, _):
        workers: list[str] = []
        for turn in range(40):
            with httpx.Client(base_url=url, headers=auth(KEY_A), timeout=60) as client:  # new
                reply = client.post("/v1/ask", json={"question": f"{QUESTION} ({turn})",
                                                     "thread_id": thread})
            assert reply.status_code == 200, reply.text
            assert reply.json()["citations"][0]["source"] == "numbers.md"
            workers.append(reply.headers["X-Ragloom-Worker"])
            if len(set(workers)) == 2 and turn >= 3:
                break
        assert len(set(workers)) == 2, f"one worker answered every turn: {workers}"
        history = httpx.get(f"{url}/v1/threads/{thread}", headers=auth(KEY_A), timeout=60)
        questions = [m["content"] for m in history.json()["messages"] if m["role"] == "user"]
        assert questions == [f"{QUESTION} ({t})" for t in range(len(workers))]
        # another tenant does not see the thread on any worker
        for _ in range(4):
            with httpx.Client(base_url=url, headers=auth(KEY_B), timeout=60) as client:
                assert client.get(f"/v1/threads/{thread}").status_code == 404


def test_a_busy_thread_is_refused_by_another_worker(
    tmp_path: Path, postgres_url: str  # noqa: F811
) -> None:
    """Two servers (two processes' worth: two connections) on one PostgreSQL: while one runs a
    turn on a thread, the other answers 409 `thread_busy` for it, and 200 once it is done."""
    import asyncio
    import threading

    from ragloom.server import create_app
    from tests.ragloom.server_helpers import running, server_settings

    gate = threading.Event()

    class Held:
        """A run that, on a `lease-` thread, waits until the test lets it finish."""

        async def astream(self, _input: Any, config: dict[str, Any], **kwargs: Any) -> Any:
            yield ("updates", {"start_turn": {}})
            while "lease-" in config["configurable"]["thread_id"] and not gate.is_set():
                await asyncio.sleep(0.05)
            yield ("values", {"answer": "done", "citations": [], "engine": "held"})

    settings = server_settings(tmp_path, checkpointer={"kind": "postgres",
                                                       "postgres_url": postgres_url})
    body = {"question": "q?", "thread_id": f"lease-{os.getpid()}"}
    with running(create_app(settings, build_assistant=lambda t: Held())) as first, \
            running(create_app(settings, build_assistant=lambda t: Held())) as second:
        with httpx.stream("POST", f"{first}/v1/ask/stream", json=body, headers=auth(KEY_A),
                          timeout=30) as reply:
            lines = reply.iter_lines()
            assert next(lines).startswith("event: node")
            busy = httpx.post(f"{second}/v1/ask", json=body, headers=auth(KEY_A), timeout=30)
            assert busy.status_code == 409 and busy.json()["error"]["code"] == "thread_busy"
            other = httpx.post(f"{second}/v1/ask", json={**body, "thread_id": "free"},
                               headers=auth(KEY_A), timeout=30)
            assert other.status_code == 200  # other threads are not held up
            gate.set()
            assert "event: final" in "\n".join(lines)
        done = httpx.post(f"{second}/v1/ask", json=body, headers=auth(KEY_A), timeout=30)
        assert done.status_code == 200 and done.json()["answer"] == "done"
