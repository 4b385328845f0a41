"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks.

Real sockets, real client: `ChatOpenAI`, the openai SDK and DSPy talk to it exactly as they would
talk to OpenAI, vLLM or llama.cpp. Replies are scripted (a queue, then a callable, then an echo),
and faults are injected per request: status codes with Retry-After, delays, a server that never
answers, dropped connections, malformed JSON and truncated replies (a body or a stream cut off).

    with OpenAICompatibleServer() as server:
        server.enqueue(Fault(status=429, retry_after=0), "hello")
        ChatOpenAI(base_url=server.base_url, api_key="x").invoke("hi")
"""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import numpy as np

from ragloom.core.testing.embedders import HashingEmbedder


@dataclass
class ToolCall:
    """One function call the scripted assistant makes."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def to_wire(self, index: int) -> dict[str, Any]:
        args = self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)
        return {
            "id": self.id or f"call_{index}_{uuid.uuid4().hex[:8]}",
            "type": "function",
            "function": {"name": self.name, "arguments": args},
        }


@dataclass
class Reply:
    """A scripted assistant message.

    `usage` (prompt_tokens / completion_tokens) defaults to whitespace-token counts. `delay` is
    seconds before the first byte; `chunk_delay` is seconds between streamed chunks. `break_after`
    drops the connection after that many streamed content chunks (a mid-stream failure).
    """

    content: str | None = ""
    tool_calls: list[ToolCall | Mapping[str, Any]] = field(default_factory=list)
    usage: Mapping[str, int] | None = None
    delay: float = 0.0
    finish_reason: str | None = None
    break_after: int | None = None
    chunk_delay: float = 0.0

    def wire_tool_calls(self) -> list[dict[str, Any]]:
        calls = []
        for index, call in enumerate(self.tool_calls):
            if isinstance(call, ToolCall):
                calls.append(call.to_wire(index))
            else:
                calls.append(ToolCall(call["name"], call.get("arguments", {}),
                                      call.get("id")).to_wire(index))
        return calls


@dataclass
class Fault:
    """An injected failure for one request.

    `status` with a JSON error body (or `body`); `retry_after` sets the Retry-After header;
    `delay` waits first; `hang` never answers (until the server stops); `drop_connection` closes
    the socket without a response; `malformed` answers 200 with a body that is not JSON;
    `truncate` answers 200 with `reply` (default: what the responder would give), cut off
    halfway: a plain reply sends half its announced body, a streamed one stops after half its
    chunks (no finish_reason, no `[DONE]`) and closes.
    """

    status: int = 500
    retry_after: float | None = None
    body: str | Mapping[str, Any] | None = None
    delay: float = 0.0
    hang: bool = False
    drop_connection: bool = False
    malformed: bool = False
    truncate: bool = False
    reply: Reply | str | None = None


ScriptItem = str | Reply | Fault
Responder = Callable[[dict[str, Any]], ScriptItem]


@dataclass
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: httpx.Headers  # case-insensitive, as HTTP header names are
    json: dict[str, Any] | None
    received_at: float


def _words(text: str) -> list[str]:
    return text.split()


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def last_user_text(request: Mapping[str, Any]) -> str:
    """The text of the last user message of a chat request (handy in responders)."""
    for message in reversed(request.get("messages", [])):
        if message.get("role") == "user":
            return _message_text(message)
    return ""


def _echo(request: dict[str, Any]) -> ScriptItem:
    return f"echo: {last_user_text(request)}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up is normal here (timeouts, cancelled calls): stay quiet."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        # Without TCP_NODELAY, Nagle + delayed ACK costs ~40 ms per request.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr


class OpenAICompatibleServer:
    """An OpenAI-compatible server on an ephemeral loopback port (threaded, real HTTP).

    Chat replies come from the queue (`enqueue`), then `responder(request_json)`, then an echo.
    `delay` adds latency to every reply. `api_key`, when set, makes requests with another bearer
    token fail with 401. Every request is recorded in `requests`.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        replies: Iterable[ScriptItem] = (),
        delay: float = 0.0,
        model: str = "test-model",
        api_key: str | None = None,
        embedding_dimensions: int = 256,
    ) -> None:
        self.responder = responder or _echo
        self.delay = delay
        self.model = model
        self.api_key = api_key
        self.embedding_dimensions = embedding_dimensions
        self.requests: list[RecordedRequest] = []
        self._queue: collections.deque[ScriptItem] = collections.deque(replies)
        self._embedding_faults: collections.deque[Fault] = collections.deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> OpenAICompatibleServer:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        handler = type("_BoundHandler", (_Handler,), {"owner": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hanging or delayed replies are released."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OpenAICompatibleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, what OpenAI clients take as base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting -----------------------------------------------------------------------------

    def enqueue(self, *items: ScriptItem) -> None:
        """Queue chat replies/faults; each chat request takes the next one."""
        with self._lock:
            self._queue.extend(items)

    def enqueue_embeddings(self, *faults: Fault) -> None:
        """Queue faults for the next embeddings requests."""
        with self._lock:
            self._embedding_faults.extend(faults)

    def reset(self) -> None:
        """Forget recorded requests and queued replies/faults (the responder stays)."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()
            self._embedding_faults.clear()

    def chat_requests(self) -> list[RecordedRequest]:
        """Recorded chat-completion requests."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_chat(self, body: dict[str, Any]) -> ScriptItem:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return self.responder(body)

    def _next_embedding_fault(self) -> Fault | None:
        with self._lock:
            return self._embedding_faults.popleft() if self._embedding_faults else None

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when the server is stopping."""
        return self._stopping.wait(seconds) if seconds > 0 else self._stopping.is_set()


class _Handler(BaseHTTPRequestHandler):
    owner: OpenAICompatibleServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr access logs
        return

    # -- plumbing ------------------------------------------------------------------------------

    def _read_json(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None

    def _send_json(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        body = json.dumps(payload).encode("utf-8")
        self._send_bytes(status, body, "application/json", headers)

    def _send_bytes(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _authorized(self) -> bool:
        key = self.owner.api_key
        return key is None or self.headers.get("Authorization") == f"Bearer {key}"

    def _record(self, body: dict[str, Any] | None) -> None:
        self.owner._record(
            RecordedRequest(
                self.command, self.path, httpx.Headers(self.headers.items()), body, time.time()
            )
        )

    # -- routes --------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._record(None)
        if self.path.rstrip("/").endswith("/models"):
            created = int(time.time())
            self._send_json(200, {"object": "list", "data": [
                {"id": self.owner.model, "object": "model", "created": created,
                 "owned_by": "ragloom"}
            ]})
            return
        self._send_json(404, _error("not found", "invalid_request_error"))

    def do_POST(self) -> None:
        body = self._read_json()
        self._record(body)
        if not self._authorized():
            self._send_json(401, _error("Incorrect API key provided", "invalid_request_error",
                                        code="invalid_api_key"))
            return
        if body is None:
            self._send_json(400, _error("request body is not JSON", "invalid_request_error"))
            return
        path = self.path.rstrip("/")
        if path.endswith("/chat/completions"):
            self._chat(body)
        elif path.endswith("/embeddings"):
            self._embeddings(body)
        else:
            self._send_json(404, _error("not found", "invalid_request_error"))

    def _apply_fault(self, fault: Fault) -> None:
        if fault.hang:
            self.owner.wait(3600)
            self._drop()
            return
        if self.owner.wait(fault.delay):
            self._drop()
            return
        if fault.drop_connection:
            self._drop()
            return
        if fault.malformed:
            self._send_bytes(200, b'{"id": "broken", "choices": [', "application/json")
            return
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        if isinstance(fault.body, str):
            self._send_bytes(fault.status, fault.body.encode("utf-8"), "application/json", headers)
        else:
            payload = fault.body or _error(f"injected status {fault.status}", _kind(fault.status))
            self._send_json(fault.status, payload, headers)

    def _chat(self, body: dict[str, Any]) -> None:
        item = self.owner._next_chat(body)
        if isinstance(item, Fault) and item.truncate:
            self._truncated(body, item)
            return
        if isinstance(item, Fault):
            self._apply_fault(item)
            return
        reply = item if isinstance(item, Reply) else Reply(content=str(item))
        if self.owner.wait(self.owner.delay + reply.delay):
            self._drop()
            return
        usage = _usage(body, reply)
        if body.get("stream"):
            self._stream_chat(body, reply, usage)
        else:
            self._send_json(200, _completion(body, reply, usage, self.owner.model))

    def _truncated(self, body: dict[str, Any], fault: Fault) -> None:
        """The responder's reply, cut off halfway (see `Fault.truncate`)."""
        item = fault.reply if fault.reply is not None else self.owner.responder(body)
        reply = item if isinstance(item, Reply) else Reply(content=str(item))
        if isinstance(item, Fault) or self.owner.wait(fault.delay):
            self._drop()
            return
        usage = _usage(body, reply)
        if body.get("stream"):
            chunks = list(_stream_chunks(body, reply, usage, self.owner.model))
            cut = Reply(**{**reply.__dict__, "break_after": max(0, len(chunks) // 2 - 1)})
            self._stream_chat(body, cut, usage, clean_close=True)
            return
        whole = json.dumps(_completion(body, reply, usage, self.owner.model)).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(whole)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(whole[: len(whole) // 2])
            self.wfile.flush()
        self._drop()

    def _stream_chat(
        self, body: dict[str, Any], reply: Reply, usage: dict[str, int], clean_close: bool = False
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        chunks = list(_stream_chunks(body, reply, usage, self.owner.model))
        try:
            for index, chunk in enumerate(chunks):
                if reply.break_after is not None and index > reply.break_after:
                    if clean_close:  # the stream just ends, as a proxy cutting it off would
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    self._drop()
                    return
                if index and self.owner.wait(reply.chunk_delay):
                    self._drop()
                    return
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return

    def _embeddings(self, body: dict[str, Any]) -> None:
        fault = self.owner._next_embedding_fault()
        if fault is not None:
            self._apply_fault(fault)
            return
        if self.owner.wait(self.owner.delay):
            self._drop()
            return
        inputs = body.get("input", [])
        texts = [inputs] if isinstance(inputs, str) else [str(t) for t in inputs]
        dims = int(body.get("dimensions") or self.owner.embedding_dimensions)
        vectors = HashingEmbedder(dimensions=dims).embed_documents(texts)
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            {"object": "embedding", "index": i,
             "embedding": _b64(vector) if as_base64 else [float(x) for x in vector]}
            for i, vector in enumerate(vectors)
        ]
        tokens = sum(len(_words(t)) for t in texts)
        self._send_json(200, {"object": "list", "data": data, "model": body.get("model"),
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


def _b64(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _kind(status: int) -> str:
    if status == 429:
        return "rate_limit_exceeded"
    if status in (401, 403):
        return "authentication_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code or kind}}


def _usage(body: Mapping[str, Any], reply: Reply) -> dict[str, int]:
    prompt = sum(len(_words(_message_text(m))) for m in body.get("messages", []))
    completion = len(_words(reply.content or ""))
    completion += sum(len(_words(c["function"]["arguments"])) for c in reply.wire_tool_calls())
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    usage.update(dict(reply.usage or {}))
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return usage


def _finish(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


def _completion(
    body: Mapping[str, Any], reply: Reply, usage: dict[str, int], default_model: str
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = reply.wire_tool_calls()
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or default_model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": _finish(reply)}],
        "usage": usage,
    }


def _stream_chunks(
    body: Mapping[str, Any], reply: Reply, usage: dict[str, int], default_model: str
) -> Iterable[dict[str, Any]]:
    ident = f"chatcmpl-{uuid.uuid4().hex[:12]}"
    base = {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()),
            "model": body.get("model") or default_model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                     "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    words = (reply.content or "").split(" ")
    for i, word in enumerate(words):
        piece = word if i == len(words) - 1 else word + " "
        if piece:
            yield chunk({"content": piece})
    for index, call in enumerate(reply.wire_tool_calls()):
        yield chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                     "function": {"name": call["function"]["name"],
                                                  "arguments": ""}}]})
        arguments = call["function"]["arguments"]
        middle = max(1, len(arguments) // 2)
        for part in (arguments[:middle], arguments[middle:]):
            if part:
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
    yield chunk({}, _finish(reply))
    options = body.get("stream_options") or {}
    if options.get("include_usage"):
        yield {**base, "choices": [], "usage": usage}
