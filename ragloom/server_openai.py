"""OpenAI-compatible routes: `GET /v1/models` and `POST /v1/chat/completions` (plain and SSE).

Any OpenAI client talks to ragloom unchanged: the last user message is the question; the thread
comes from the `X-Thread-Id` header or, without one, from the conversation itself (a hash of the
tenant and the first user message, so a client that resends the history lands on the same
thread). The reply's content is the cited answer (`[n]` markers) with a sources footer; the
structured citations ride in an extra `ragloom` object on the response (and on the last stream
chunk). Streams are `chat.completion.chunk` objects: the role first, then content, then a chunk
with `finish_reason`, an optional usage chunk (`stream_options.include_usage`), `data: [DONE]`.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ragloom.core.text import clean_query
from ragloom.server_auth import Principal
from ragloom.server_errors import InvalidRequestError, error_body
from ragloom.server_runtime import TurnResult, TurnRun

MODEL_ID = "ragloom-assistant"
THREAD_HEADER = "X-Thread-Id"
_STREAM_PIECE_WORDS = 4  # content deltas carry a few words each


class ChatMessage(BaseModel):
    """One message of an OpenAI chat request (fields other than role/content are ignored)."""

    model_config = ConfigDict(extra="allow")

    role: str = Field(..., max_length=32)
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """The fields of an OpenAI chat-completions request that ragloom reads; the rest (temperature,
    max_tokens, tools...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(..., max_length=128)
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=1000)
    stream: bool = False
    stream_options: dict[str, Any] | None = None


def models_list() -> dict[str, Any]:
    """The `/v1/models` body."""
    return {"object": "list", "data": [
        {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "ragloom"},
    ]}  # fmt: skip


def text_of(message: ChatMessage) -> str:
    """A message's text (string content, or the text parts of a content list)."""
    if isinstance(message.content, str):
        return message.content
    parts = message.content or []
    return "".join(str(p.get("text", "")) for p in parts if p.get("type", "text") == "text")


def question_of(request: ChatCompletionRequest, max_chars: int) -> str:
    """The question: the last message, which must be the user's."""
    last = request.messages[-1]
    if last.role != "user":
        raise InvalidRequestError("the last message must be the user's question")
    question = clean_query(text_of(last))  # no control characters, NUL or escape sequences
    if not question:
        raise InvalidRequestError("the question is empty")
    if len(question) > max_chars:
        raise InvalidRequestError(f"the question is longer than {max_chars} characters")
    return question


def derived_thread_id(principal: Principal, request: ChatCompletionRequest) -> str:
    """A thread id from the conversation: the tenant and its first user message."""
    first = next((text_of(m) for m in request.messages if m.role == "user"), "")
    seed = f"{principal.namespace}\x00{first}".encode("utf-8", "surrogatepass")  # any text
    digest = hashlib.sha256(seed).hexdigest()
    return f"conv-{digest[:24]}"


def render_content(turn: TurnResult) -> str:
    """The answer text with its `[n]` markers, a note for a caveat, and a sources footer."""
    parts = [turn.answer.strip()]
    if turn.caveat:
        parts.append(f"Note: {turn.caveat}")
    if turn.citations:
        lines = ["Sources:"]
        for i, citation in enumerate(turn.citations, 1):
            heading = " > ".join(citation.get("heading_path") or [])
            where = f" § {heading}" if heading else ""
            lines.append(f"[{i}] {citation.get('source', '')}{where}")
        parts.append("\n".join(lines))
    return "\n\n".join(p for p in parts if p)


def usage_of(turn: TurnResult, question: str, content: str) -> tuple[dict[str, int], bool]:
    """OpenAI usage figures: the run's measured tokens, or estimates when no model ran."""
    tokens_in = int(turn.usage.get("tokens_in") or 0)
    tokens_out = int(turn.usage.get("tokens_out") or 0)
    estimated = tokens_in == 0 and tokens_out == 0
    if estimated:
        from ragloom.tools.ingest import count_tokens

        tokens_in, tokens_out = count_tokens(question), count_tokens(content)
    usage = {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
             "total_tokens": tokens_in + tokens_out}  # fmt: skip
    return usage, estimated


def extension(turn: TurnResult, estimated: bool) -> dict[str, Any]:
    """The `ragloom` object: structured citations and what made the answer."""
    return {
        "thread_id": turn.thread_id, "citations": turn.citations, "engine": turn.engine,
        "caveat": turn.caveat, "route": turn.route, "usage_estimated": estimated,
    }  # fmt: skip


class Completion:
    """Builds the bodies of one completion (plain or streamed) with one id and timestamp."""

    def __init__(self, model: str, question: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model
        self.question = question

    def body(self, turn: TurnResult) -> dict[str, Any]:
        content = render_content(turn)
        usage, estimated = usage_of(turn, self.question, content)
        return {
            "id": self.id, "object": "chat.completion", "created": self.created,
            "model": self.model, "system_fingerprint": None,
            "choices": [{
                "index": 0, "logprobs": None, "finish_reason": "stop",
                "message": {"role": "assistant", "content": content, "refusal": None},
            }],
            "usage": usage,
            "ragloom": extension(turn, estimated),
        }  # fmt: skip

    def chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        data = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **extra,
        }  # fmt: skip
        return _data(data)

    async def stream(self, run: TurnRun, include_usage: bool) -> AsyncIterator[str]:
        """SSE lines for a streamed completion; a failed run ends with an `error` event."""
        usage_field = {"usage": None} if include_usage else {}
        yield self.chunk({"role": "assistant", "content": ""}, **usage_field)
        turn: TurnResult | None = None
        async for kind, payload in run.events():
            if kind == "final":
                turn = payload
            elif kind == "error":
                yield f"event: error\n{_data(error_body(payload))}"
                return
        if turn is None:  # pragma: no cover - a run always ends with final or error
            return
        content = render_content(turn)
        for piece in _pieces(content):
            yield self.chunk({"content": piece}, **usage_field)
        usage, estimated = usage_of(turn, self.question, content)
        yield self.chunk({}, "stop", ragloom=extension(turn, estimated), **usage_field)
        if include_usage:
            yield _data({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "system_fingerprint": None, "choices": [], "usage": usage,
            })  # fmt: skip
        yield "data: [DONE]\n\n"


def _pieces(text: str) -> list[str]:
    """`text` cut into deltas of a few words (whitespace kept, so they join back exactly)."""
    pieces: list[str] = []
    words = text.split(" ")
    for start in range(0, len(words), _STREAM_PIECE_WORDS):
        piece = " ".join(words[start : start + _STREAM_PIECE_WORDS])
        pieces.append(piece if start == 0 else " " + piece)
    return [p for p in pieces if p]


def _data(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, default=str, ensure_ascii=False)}\n\n"
