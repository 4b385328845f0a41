"""HTTP server: the assistant over HTTP (FastAPI), for apps that are not written in Python.

    POST /v1/ask            {"question": "...", "thread_id": "..."}  -> the assistant's result
    POST /v1/ask/stream     same body -> server-sent events: `node`, `token`, `final`
    GET  /v1/threads/{id}   the thread's messages
    GET  /healthz           liveness

Run with `ragloom serve [--host 127.0.0.1] [--port 8000]`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, Field


class AskRequest(BaseModel):
    question: str = Field(..., min_length=1, max_length=8000)
    thread_id: str | None = None


def create_app(graph: Any) -> Any:
    """A FastAPI app serving `graph` (a compiled assistant)."""
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI(title="ragloom", version="0.1.0")

    def config(thread_id: str | None) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread_id or f"http-{uuid.uuid4().hex[:12]}"}}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/ask")
    async def ask(request: AskRequest) -> dict[str, Any]:
        cfg = config(request.thread_id)
        result = await graph.ainvoke({"question": request.question}, cfg)
        return {**result, "thread_id": cfg["configurable"]["thread_id"]}

    @app.post("/v1/ask/stream")
    async def ask_stream(request: AskRequest) -> StreamingResponse:
        cfg = config(request.thread_id)
        events = _events(graph, request.question, cfg)
        return StreamingResponse(events, media_type="text/event-stream")

    @app.get("/v1/threads/{thread_id}")
    async def thread(thread_id: str) -> dict[str, Any]:
        state = await graph.aget_state(config(thread_id))
        return {"thread_id": thread_id, "messages": state.values.get("messages", [])}

    return app


async def _events(graph: Any, question: str, config: dict[str, Any]) -> AsyncIterator[str]:
    final: dict[str, Any] | None = None
    async for mode, chunk in graph.astream(
        {"question": question}, config, stream_mode=["updates", "messages", "custom"]
    ):
        if mode == "updates":
            for node in chunk:
                yield _sse("node", {"node": node})
        elif mode == "messages":
            message, meta = chunk
            if meta.get("langgraph_node") == "generate_answer" and message.content:
                yield _sse("token", {"text": message.content})
        elif mode == "custom" and chunk.get("event") == "final":
            final = {**chunk, "thread_id": config["configurable"]["thread_id"]}
    if final is not None:  # last, after the finalize node's update
        yield _sse("final", final)


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"
