"""The shipped OpenAI-compatible test server, seen through raw HTTP and the openai SDK."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import openai
import pytest

from ragloom.core.testing import Fault, HashingEmbedder, OpenAICompatibleServer, Reply, ToolCall

Server = OpenAICompatibleServer


def _client(server: Server, timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0,
                         timeout=timeout)


def _post(server: Server, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", f"/v1{path}", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), data


def _chat(content: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": content}], **extra}


def test_base_url_and_models(server: Server) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert [m.id for m in _client(server).models.list()] == ["test-model"]


def test_default_reply_echoes_and_counts_whitespace_tokens(server: Server) -> None:
    reply = _client(server).chat.completions.create(**_chat("three little words"))
    assert reply.choices[0].message.content == "echo: three little words"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (3, 4)
    assert reply.choices[0].finish_reason == "stop"


def test_queue_first_then_responder_and_requests_are_recorded() -> None:
    with OpenAICompatibleServer(lambda body: f"responder saw {len(body['messages'])}",
                                replies=["queued"]) as server:
        client = _client(server)
        first = client.chat.completions.create(**_chat("a"))
        second = client.chat.completions.create(**_chat("b"))
        assert first.choices[0].message.content == "queued"
        assert second.choices[0].message.content == "responder saw 1"
        assert [r.json["messages"][0]["content"] for r in server.chat_requests()] == ["a", "b"]
        assert server.requests[0].headers["Authorization"] == "Bearer sk-test"


def test_scripted_usage_and_tool_calls(server: Server) -> None:
    server.enqueue(Reply("thinking", tool_calls=[ToolCall("lookup", {"q": "x"}, id="call_1")],
                         usage={"prompt_tokens": 100, "completion_tokens": 7}))
    reply = _client(server).chat.completions.create(**_chat())
    message = reply.choices[0].message
    assert message.tool_calls is not None
    assert message.tool_calls[0].id == "call_1"
    assert message.tool_calls[0].function.name == "lookup"
    assert json.loads(message.tool_calls[0].function.arguments) == {"q": "x"}
    assert reply.choices[0].finish_reason == "tool_calls"
    assert reply.usage is not None and reply.usage.total_tokens == 107


def test_sse_stream_with_usage_chunk_and_tool_calls(server: Server) -> None:
    server.enqueue(Reply("hello there world", tool_calls=[{"name": "f", "arguments": {"a": 1}}]))
    status, headers, data = _post(server, "/chat/completions",
                                  _chat(stream=True, stream_options={"include_usage": True}))
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    events = [line[len("data: "):] for line in data.decode().splitlines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    contents = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert [c for c in contents if c] == ["hello ", "there ", "world"]
    arguments = "".join(
        call["function"].get("arguments", "")
        for c in chunks if c["choices"] for call in c["choices"][0]["delta"].get("tool_calls", [])
    )
    assert json.loads(arguments) == {"a": 1}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3 + 2
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "tool_calls"


def test_stream_without_usage_option_has_no_usage_chunk(server: Server) -> None:
    _, _, data = _post(server, "/chat/completions", _chat(stream=True))
    chunks = [json.loads(line[6:]) for line in data.decode().splitlines()
              if line.startswith("data: {")]
    assert all(c["choices"] for c in chunks)


def test_embeddings_are_deterministic_in_float_and_base64(server: Server) -> None:
    status, _, data = _post(server, "/embeddings",
                            {"model": "e", "input": ["red apples", "green pears"],
                             "dimensions": 32, "encoding_format": "float"})
    assert status == 200
    floats = json.loads(data)
    expected = HashingEmbedder(32).embed_documents(["red apples", "green pears"])
    got = np.array([d["embedding"] for d in floats["data"]], dtype=np.float32)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    _, _, data = _post(server, "/embeddings", {"model": "e", "input": "red apples",
                                               "dimensions": 32, "encoding_format": "base64"})
    encoded = json.loads(data)["data"][0]["embedding"]
    np.testing.assert_allclose(np.frombuffer(base64.b64decode(encoded), dtype="<f4"),
                               expected[0], atol=1e-6)
    via_sdk = _client(server).embeddings.create(model="e", input=["red apples"], dimensions=32)
    np.testing.assert_allclose(via_sdk.data[0].embedding, expected[0], atol=1e-6)


def test_status_fault_with_retry_after(server: Server) -> None:
    server.enqueue(Fault(429, retry_after=3))
    status, headers, data = _post(server, "/chat/completions", _chat())
    assert status == 429 and headers["Retry-After"] == "3"
    assert json.loads(data)["error"]["type"] == "rate_limit_exceeded"
    server.enqueue(Fault(503, body={"error": {"message": "custom"}}))
    status, _, data = _post(server, "/chat/completions", _chat())
    assert status == 503 and json.loads(data)["error"]["message"] == "custom"


def test_malformed_and_dropped_replies(server: Server) -> None:
    server.enqueue(Fault(malformed=True))
    status, _, data = _post(server, "/chat/completions", _chat())
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(data)
    server.enqueue(Fault(drop_connection=True))
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        _post(server, "/chat/completions", _chat())


def test_embedding_faults_are_separate(server: Server) -> None:
    server.enqueue_embeddings(Fault(500))
    assert _post(server, "/embeddings", {"model": "e", "input": "x"})[0] == 500
    assert _post(server, "/embeddings", {"model": "e", "input": "x"})[0] == 200
    assert _post(server, "/chat/completions", _chat())[0] == 200


def test_delay_and_hang_are_released_by_stop() -> None:
    server = OpenAICompatibleServer(delay=0.2).start()
    started = time.monotonic()
    _client(server).chat.completions.create(**_chat())
    assert time.monotonic() - started >= 0.2
    server.enqueue(Fault(hang=True))
    with pytest.raises(openai.APITimeoutError):
        _client(server, timeout=0.3).chat.completions.create(**_chat())
    port = server.port
    stopping = time.monotonic()
    server.stop()
    assert time.monotonic() - stopping < 2.0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), 0.5)


def test_api_key_checking() -> None:
    with OpenAICompatibleServer(api_key="sk-right") as server:
        with pytest.raises(openai.AuthenticationError):
            _client(server).chat.completions.create(**_chat())
        ok = openai.OpenAI(base_url=server.base_url, api_key="sk-right", max_retries=0)
        assert ok.chat.completions.create(**_chat()).choices[0].message.content


def test_bad_requests(server: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", "/v1/chat/completions", b"not json", {"Content-Type": "text/plain"})
    assert conn.getresponse().status == 400
    conn.close()
    assert _post(server, "/nowhere", {})[0] == 404


def test_hundreds_of_concurrent_slow_requests() -> None:
    with OpenAICompatibleServer(delay=0.2) as server:
        client = _client(server, timeout=30)

        def call(i: int) -> str:
            reply = client.chat.completions.create(**_chat(f"n{i}"))
            return str(reply.choices[0].message.content)

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=200) as pool:
            replies = list(pool.map(call, range(300)))
        elapsed = time.monotonic() - started
    assert replies == [f"echo: n{i}" for i in range(300)]
    assert len(server.chat_requests()) == 300
    assert elapsed < 300 * 0.2 / 4  # served concurrently, not one after another


def test_chunk_delay_spreads_a_stream_and_reset_forgets(server: Server) -> None:
    server.enqueue(Reply("a b c d", chunk_delay=0.05), "queued but reset")
    arrivals = []
    started = time.monotonic()
    stream = _client(server).chat.completions.create(**_chat(), stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 4
    assert arrivals[-1] - arrivals[0] >= 0.1  # tokens arrive over time, not in one burst
    server.reset()
    assert server.requests == []
    reply = _client(server).chat.completions.create(**_chat("after"))
    assert reply.choices[0].message.content == "echo: after"
