"""A real uvicorn server on loopback, driven by the official `openai` client, unchanged."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from ragloom.graphs.wiring import Wiring
from ragloom.server import create_app
from tests.ragloom.server_helpers import (
    ACME_DOC,
    BETA_DOC,
    KEY_A,
    KEY_B,
    auth,
    running,
    server_settings,
    upload,
)

QUESTION = "How do I write octal literals?"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = server_settings(tmp_path_factory.mktemp("openai-server"))
    with running(create_app(settings)) as url:
        with httpx.Client(base_url=url) as client:
            assert upload(client, KEY_A, "numbers.md", ACME_DOC).json()["ingested"] == 1
            assert upload(client, KEY_B, "zebras.md", BETA_DOC).json()["ingested"] == 1
        yield url


def _client(base: str, key: str = KEY_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=60)


def _thread(base: str, thread_id: str, key: str = KEY_A) -> list[dict[str, Any]]:
    reply = httpx.get(f"{base}/v1/threads/{thread_id}", headers=auth(key), timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()["messages"]  # type: ignore[no-any-return]


def test_models_list(base: str) -> None:
    assert [m.id for m in _client(base).models.list()] == ["ragloom-assistant"]


def test_plain_completion_cites_and_continues_the_thread(base: str) -> None:
    client = _client(base)
    headers = {"X-Thread-Id": "oa-plain"}
    first = client.chat.completions.create(
        model="ragloom-assistant", messages=[{"role": "user", "content": QUESTION}],
        extra_headers=headers,
    )  # fmt: skip
    content = first.choices[0].message.content or ""
    assert first.object == "chat.completion" and first.choices[0].finish_reason == "stop"
    assert "0o" in content and "[1]" in content and "Sources:\n[1] numbers.md" in content
    extra = first.model_extra["ragloom"]  # type: ignore[index]
    assert extra["thread_id"] == "oa-plain" and extra["engine"] == "extractive"
    assert extra["citations"][0]["source"] == "numbers.md"
    assert first.usage is not None and first.usage.total_tokens > 0
    second = client.chat.completions.create(
        model="ragloom-assistant",
        messages=[{"role": "user", "content": QUESTION},
                  {"role": "assistant", "content": content},
                  {"role": "user", "content": "and hexadecimal ones?"}],
        extra_headers=headers,
    )  # fmt: skip
    assert "0x" in (second.choices[0].message.content or "")
    roles = [m["role"] for m in _thread(base, "oa-plain")]
    assert roles == ["user", "assistant", "user", "assistant"]


def test_streamed_completion_is_openai_chunks(base: str) -> None:
    client = _client(base)
    stream = client.chat.completions.create(
        model="ragloom-assistant", messages=[{"role": "user", "content": QUESTION}],
        stream=True, stream_options={"include_usage": True},
        extra_headers={"X-Thread-Id": "oa-stream"},
    )  # fmt: skip
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "[1]" in text and "Sources:\n[1] numbers.md" in text
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "stop"
    assert finish[0].model_extra["ragloom"]["citations"][0]["source"] == "numbers.md"  # type: ignore[index]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens > 0
    plain = client.chat.completions.create(
        model="ragloom-assistant", messages=[{"role": "user", "content": QUESTION}],
        extra_headers={"X-Thread-Id": "oa-stream-plain"},
    )  # fmt: skip
    assert text == plain.choices[0].message.content  # same answer, streamed or not


def test_thread_derived_from_the_conversation(base: str) -> None:
    """No header: a client that resends its history continues the same thread."""
    client = _client(base)
    opening: ChatCompletionMessageParam = {
        "role": "user", "content": "What does the 0o prefix mean in octal literals?"}
    first = client.chat.completions.with_raw_response.create(
        model="ragloom-assistant", messages=[opening])
    thread_id = first.headers["X-Thread-Id"]
    answer = first.parse().choices[0].message.content
    second = client.chat.completions.with_raw_response.create(
        model="ragloom-assistant",
        messages=[opening, {"role": "assistant", "content": answer},
                  {"role": "user", "content": "and the 0x prefix?"}],
    )  # fmt: skip
    assert second.headers["X-Thread-Id"] == thread_id
    assert len(_thread(base, thread_id)) == 4
    other = _client(base, KEY_B).chat.completions.with_raw_response.create(
        model="ragloom-assistant", messages=[opening])
    assert other.headers["X-Thread-Id"] != thread_id  # another tenant, another thread


def test_openai_client_errors_are_typed(base: str) -> None:
    with pytest.raises(openai.AuthenticationError) as denied:
        _client(base, "wrong-key-0000000000000000").models.list()
    assert denied.value.body["code"] == "unauthorized"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as missing:
        _client(base).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.UnprocessableEntityError):
        _client(base).chat.completions.create(
            model="ragloom-assistant", messages=[{"role": "assistant", "content": "hi"}])


class SlowGraph:
    """The real assistant, with a pause after every streamed item (a slow model)."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    async def astream(self, *args: Any, **kwargs: Any) -> Any:
        async for item in self.inner.astream(*args, **kwargs):
            await asyncio.sleep(self.delay)
            yield item

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_disconnect_mid_stream_finishes_the_turn_and_busy_threads_are_refused(
    tmp_path: Path,
) -> None:
    settings = server_settings(tmp_path)
    with Wiring(settings) as wiring:
        app = create_app(settings,
                         build_assistant=lambda tenant: SlowGraph(wiring.assistant(tenant=tenant),
                                                                  0.05))
        with running(app) as url:
            graph_store = wiring.store
            from ragloom.tools.ingest import ingest_paths

            (tmp_path / "docs").mkdir()
            (tmp_path / "docs" / "numbers.md").write_text(ACME_DOC)
            ingest_paths([tmp_path / "docs"], graph_store, root=tmp_path / "docs",
                         tenant="acme", progress=False)
            body = {"question": QUESTION, "thread_id": "gone"}
            with httpx.stream("POST", f"{url}/v1/ask/stream", json=body, headers=auth(KEY_A),
                              timeout=30) as reply:
                first = next(reply.iter_lines())
                assert first.startswith("event: node")
            # the client went away mid-turn; the turn goes on and holds the thread
            busy = httpx.post(f"{url}/v1/ask", json=body, headers=auth(KEY_A), timeout=30)
            assert busy.status_code == 409 and busy.json()["error"]["code"] == "thread_busy"
            deadline = time.monotonic() + 30
            messages: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                reply = httpx.get(f"{url}/v1/threads/gone", headers=auth(KEY_A), timeout=30)
                messages = reply.json().get("messages", []) if reply.status_code == 200 else []
                if len(messages) >= 2:
                    break
                time.sleep(0.2)
            assert [m["role"] for m in messages] == ["user", "assistant"]
            assert "[1]" in messages[-1]["content"]
            while time.monotonic() < deadline:  # free again once the run has ended
                again = httpx.post(f"{url}/v1/ask", json=body, headers=auth(KEY_A), timeout=30)
                if again.status_code != 409:
                    break
                time.sleep(0.2)
            assert again.status_code == 200


def test_stream_error_event_reaches_the_openai_client(tmp_path: Path) -> None:
    from ragloom.core.errors import ProviderUnavailableError

    class Failing:
        async def astream(self, *args: Any, **kwargs: Any) -> Any:
            raise ProviderUnavailableError("upstream down")
            yield  # pragma: no cover

    app = create_app(server_settings(tmp_path), build_assistant=lambda tenant: Failing())
    with running(app) as url:
        raw = httpx.post(f"{url}/v1/chat/completions", headers=auth(KEY_A), timeout=30, json={
            "model": "ragloom-assistant", "stream": True,
            "messages": [{"role": "user", "content": QUESTION}]})  # fmt: skip
        blocks = raw.text.strip().split("\n\n")
        assert blocks[-1].startswith("event: error\ndata: ")
        assert json.loads(blocks[-1].split("data: ", 1)[1])["error"]["code"] == "unavailable"
        stream = _client(url).chat.completions.create(
            model="ragloom-assistant", messages=[{"role": "user", "content": QUESTION}],
            stream=True)
        with pytest.raises(openai.APIError, match="unavailable"):
            list(stream)


def test_openai_engine_usage_is_measured(tmp_path: Path) -> None:
    """On the openai engine the usage figures are the model's tokens, not estimates."""
    from ragloom.core.testing import OpenAICompatibleServer
    from tests.graphs.llm_script import AssistantLLM

    with OpenAICompatibleServer(AssistantLLM()) as llm:
        settings = server_settings(tmp_path, base_url=llm.base_url)
        with running(create_app(settings)) as url:
            with httpx.Client(base_url=url) as client:
                assert upload(client, KEY_A, "numbers.md", ACME_DOC).json()["ingested"] == 1
            reply = _client(url).chat.completions.create(
                model="ragloom-assistant", messages=[{"role": "user", "content": QUESTION}])
        chat_calls = len(llm.chat_requests())
    extra = reply.model_extra["ragloom"]  # type: ignore[index]
    assert extra["engine"] != "extractive" and extra["usage_estimated"] is False
    assert reply.usage is not None and reply.usage.prompt_tokens > 0 and chat_calls > 0
    assert "0o" in (reply.choices[0].message.content or "")
