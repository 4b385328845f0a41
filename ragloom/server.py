"""HTTP server: the assistant for apps and chat clients that are not Python (FastAPI + uvicorn).

    GET  /v1/models             OpenAI-compatible: the assistant's model id
    POST /v1/chat/completions   OpenAI-compatible chat completions, plain and `stream: true`
    POST /v1/ask                {"question": "...", "thread_id": "..."} -> answer + citations
    POST /v1/ask/stream         same body -> server-sent events `node`, `token`, `final` | `error`
    GET  /v1/threads/{id}       the thread's messages
    POST /v1/ingest             multipart upload of files (field `file`) into the tenant's store
    POST /v1/summarize          {"source": "..."} or {"text": "..."} -> a summary
    GET  /healthz, /readyz      liveness; readiness (store and checkpointer reachable)

Every `/v1` route takes `Authorization: Bearer <key>` when keys are configured
(`settings.server.api_keys`); the key picks the tenant. Every error is one JSON shape (OpenAI's,
see `ragloom.server_errors`). Run with `ragloom serve [--host] [--port] [--workers N]`; see
docs/serving.md. FastAPI and uvicorn are imported here and in the server modules only.
"""

from __future__ import annotations

import asyncio
import email.message
import os
import tempfile
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import structlog
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ragloom.core.errors import ConfigError, RagloomError
from ragloom.core.settings import Settings
from ragloom.core.text import clean_query
from ragloom.server_auth import OPEN_NAMESPACE, KeyRing, Principal, check_bind, check_thread_id
from ragloom.server_errors import (
    InvalidRequestError,
    NotFoundError,
    NotReadyError,
    PayloadTooLargeError,
    UnknownModelError,
    error_body,
    problem,
    retry_after,
    status_of,
)
from ragloom.server_openai import (
    MODEL_ID,
    THREAD_HEADER,
    ChatCompletionRequest,
    Completion,
    derived_thread_id,
    models_list,
    question_of,
)
from ragloom.server_runtime import (
    GraphBuilder,
    ServerRuntime,
    TurnRun,
    message_dict,
    new_thread_id,
)

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WORKER_HEADER = "X-Ragloom-Worker"
INGEST_PATH = "/v1/ingest"
MAX_UPLOAD_FILES = 32
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class AskRequest(BaseModel):
    """A question on a thread (a new thread when `thread_id` is omitted)."""

    question: str = Field(..., min_length=1)
    thread_id: str | None = Field(None, min_length=1)


class SummarizeRequest(BaseModel):
    """What to summarize: an ingested `source` of the tenant, or `text` given here."""

    source: str | None = Field(None, min_length=1, max_length=1024)
    text: str | None = Field(None, min_length=1)
    title: str | None = Field(None, max_length=256)
    length: Literal["short", "medium", "long"] = "medium"


# ---------------------------------------------------------------- ASGI middleware


class BodyLimit:
    """Reject bodies over the limit with 413 before they are read (Content-Length) or as soon
    as the streamed bytes pass it; the body is never echoed back."""

    def __init__(self, app: ASGIApp, limit: int, upload_limit: int) -> None:
        self.app = app
        self.limit = limit
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit if scope.get("path") == INGEST_PATH else self.limit
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _send_json(send, 413, problem(413, PayloadTooLargeError.code,
                                                f"request body over {limit} bytes"))
            return
        received = 0
        answered = False

        async def limited() -> Message:
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request" and not answered:
                received += len(message.get("body", b""))
                if received > limit:  # answer now; the app sees a client that went away
                    answered = True
                    await _send_json(send, 413, problem(413, PayloadTooLargeError.code,
                                                        f"request body over {limit} bytes"))
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not answered:
                await send(message)

        await self.app(scope, limited, guarded)


class ErrorGuard:
    """Outermost net: an unexpected exception becomes a JSON 500 (and one redacted log line),
    never a plain-text 500 or a traceback on the client; every response names its worker."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.worker = str(os.getpid()).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []),
                                      (WORKER_HEADER.lower().encode(), self.worker)]
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # the last place an error can be made JSON
            if not isinstance(exc, RagloomError | ClientDisconnect):
                # the traceback as text, without locals; the redaction processor cleans it
                log.error("server.unhandled", path=scope.get("path"), error=type(exc).__name__,
                          traceback="".join(traceback.format_exception(exc)))
            if not started:
                status = status_of(exc)
                await _send_json(send, status, error_body(exc),
                                 [(WORKER_HEADER.lower().encode(), self.worker)])


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    import json

    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
        *(headers or []),
    ]})  # fmt: skip
    await send({"type": "http.response.body", "body": payload})


# ---------------------------------------------------------------- the app


def create_app(
    settings: Settings | None = None,
    *,
    build_assistant: GraphBuilder | None = None,
    build_summarizer: Callable[[], Any] | None = None,
    tune_process: bool = False,
) -> FastAPI:
    """The server app over `settings` (read from the environment when None).

    The store and checkpointer open when the app starts (its lifespan) and close when it stops.
    `build_assistant(tenant)` / `build_summarizer()` replace the graphs (tests, custom apps).
    `tune_process` (what `ragloom serve` passes) tunes the garbage collector for a long-lived
    server once start-up is done; an app embedding this one keeps its own settings.
    """
    from ragloom.core.settings import load_settings

    settings = settings or load_settings()
    if not structlog.is_configured():  # never log through structlog's default (no redaction)
        from ragloom.core.logging import configure_logging

        configure_logging(level=settings.log_level, fmt=settings.log_format)
    if settings.llm.api_key is not None:
        from ragloom.core.logging import register_secret

        register_secret(settings.llm.api_key)
    runtime = ServerRuntime(
        settings, build_assistant=build_assistant, build_summarizer=build_summarizer
    )
    keys = KeyRing(settings.server, default_tenant=settings.store.tenant)
    limits = settings.server

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(runtime.open)
        if tune_process:
            tune_gc_for_serving()
        try:
            yield
        finally:
            await runtime.aclose()

    app = FastAPI(
        title="ragloom", version="0.1.0", lifespan=lifespan,
        description="Cited answers over your documents. OpenAI-compatible chat completions, "
        "ragloom's native ask API, ingestion and summaries. See docs/serving.md.",
    )  # fmt: skip
    app.state.runtime = runtime
    _install_errors(app)
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes,  # type: ignore[arg-type]
                       upload_limit=limits.max_upload_bytes)
    app.add_middleware(ErrorGuard)  # type: ignore[arg-type]

    bearer = HTTPBearer(auto_error=False, description="an API key from settings.server.api_keys")

    def principal(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    ) -> Principal:
        header = f"Bearer {credentials.credentials}" if credentials is not None else None
        return keys.authenticate(header)

    def thread_of(thread_id: str | None) -> str:
        if thread_id is None:
            return new_thread_id()
        return check_thread_id(thread_id, limits.max_thread_id_chars)

    def checked_question(question: str) -> str:
        question = clean_query(question)  # no control characters, NUL or escape sequences
        if not question:
            raise InvalidRequestError("the question is empty")
        if len(question) > limits.max_question_chars:
            raise InvalidRequestError(
                f"the question is longer than {limits.max_question_chars} characters"
            )
        return question

    async def start(who: Principal, question: str, thread_id: str) -> TurnRun:
        graph = await runtime.assistant(who)
        return await runtime.start_turn(graph, who, question, thread_id)

    # -- health

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> dict[str, Any]:
        """Readiness: the store and the checkpointer answer (503 `not_ready` otherwise)."""
        probe = Principal(settings.store.tenant, OPEN_NAMESPACE)
        return {"status": "ready", "checks": await runtime.check_ready(probe)}

    # -- OpenAI-compatible

    @app.get("/v1/models", tags=["openai"])
    async def models(who: Principal = Depends(principal)) -> dict[str, Any]:
        """The models this server answers as (OpenAI's list shape)."""
        return models_list()

    @app.post("/v1/chat/completions", tags=["openai"], response_model=None)
    async def chat_completions(
        body: ChatCompletionRequest,
        who: Principal = Depends(principal),
        x_thread_id: str | None = Header(
            None, alias=THREAD_HEADER, description="the thread to continue (else derived)"
        ),
    ) -> Response:
        """OpenAI chat completions over the assistant; `ragloom` carries the citations."""
        if body.model != MODEL_ID:
            raise UnknownModelError(f"model {body.model[:64]!r} does not exist; use {MODEL_ID!r}")
        question = question_of(body, limits.max_question_chars)
        if x_thread_id is not None:
            thread_id = check_thread_id(x_thread_id, limits.max_thread_id_chars)
        else:
            thread_id = derived_thread_id(who, body)
        run = await start(who, question, thread_id)
        completion = Completion(body.model, question)
        headers = {THREAD_HEADER: thread_id}
        if body.stream:
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            return StreamingResponse(
                completion.stream(run, include_usage), media_type="text/event-stream",
                headers={**SSE_HEADERS, **headers},
            )  # fmt: skip
        turn = await run.wait()
        return JSONResponse(completion.body(turn), headers=headers)

    # -- native

    @app.post("/v1/ask", tags=["ragloom"])
    async def ask(body: AskRequest, who: Principal = Depends(principal)) -> dict[str, Any]:
        """Answer a question on a thread: answer, citations, engine, caveat, usage, thread_id."""
        run = await start(who, checked_question(body.question), thread_of(body.thread_id))
        return (await run.wait()).to_dict()

    @app.post("/v1/ask/stream", tags=["ragloom"], response_model=None)
    async def ask_stream(
        body: AskRequest, who: Principal = Depends(principal)
    ) -> StreamingResponse:
        """Server-sent events: `node` per finished node, `token` per LLM token, then `final`
        (the /v1/ask body) or `error` (the JSON error body)."""
        run = await start(who, checked_question(body.question), thread_of(body.thread_id))
        return StreamingResponse(_native_events(run), media_type="text/event-stream",
                                 headers=SSE_HEADERS)

    @app.get("/v1/threads/{thread_id}", tags=["ragloom"])
    async def thread(thread_id: str, who: Principal = Depends(principal)) -> dict[str, Any]:
        """The thread's messages (404 for a thread this key has never written)."""
        thread_id = check_thread_id(thread_id, limits.max_thread_id_chars)
        graph = await runtime.assistant(who)
        state = await graph.aget_state({"configurable": {"thread_id": who.thread_key(thread_id)}})
        messages = (state.values or {}).get("messages") or []
        if not messages:
            raise NotFoundError(f"no thread {thread_id}")
        return {"thread_id": thread_id, "messages": [message_dict(m) for m in messages]}

    upload_schema = {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}

    @app.post(INGEST_PATH, tags=["ragloom"], openapi_extra={"requestBody": {
        "required": True, "content": {"multipart/form-data": {"schema": upload_schema}}}})
    async def ingest(request: Request, who: Principal = Depends(principal)) -> dict[str, Any]:
        """Upload files (multipart/form-data, field `file`, repeatable) into the tenant's store;
        returns the ingestion report (bad files are listed in `failed`, the rest go in)."""
        files = _multipart_files(await request.body(), request.headers.get("content-type", ""))
        if runtime.store is None:
            raise NotReadyError("this server has no document store")
        report = await asyncio.to_thread(_ingest_files, runtime, runtime.tenant_of(who), files)
        return report

    @app.post("/v1/summarize", tags=["ragloom"])
    async def summarize(
        body: SummarizeRequest, who: Principal = Depends(principal)
    ) -> dict[str, Any]:
        """Summarize one ingested source of the tenant, or the text sent."""
        if (body.source is None) == (body.text is None):
            raise InvalidRequestError("give exactly one of `source` or `text`")
        if body.text is not None:
            name = body.title or "text"
            document = {"source": name, "title": body.title or "", "text": body.text}
        else:
            document = await _stored_document(runtime, runtime.tenant_of(who), body.source or "")
        graph = runtime.summarizer()
        result = await graph.ainvoke({"documents": [document], "length": body.length})
        keys_out = ("summary", "strategy", "chunks", "llm_calls", "tokens", "seconds", "engine",
                    "sources", "errors")  # fmt: skip
        return {k: result.get(k) for k in keys_out if k in result}

    return app


def _install_errors(app: FastAPI) -> None:
    """Every error path answers the one JSON shape."""

    @app.exception_handler(RagloomError)
    async def ragloom_error(_: Request, exc: RagloomError) -> JSONResponse:
        status = status_of(exc)
        log.warning("server.error", code=exc.code, status=status, detail=str(exc))
        headers = {}
        wait = retry_after(exc)
        if wait is not None:
            headers["Retry-After"] = f"{max(wait, 0):g}"
        return JSONResponse(error_body(exc), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
            for err in exc.errors()[:5]
        )  # the locations and reasons only: never the input itself
        return JSONResponse(problem(422, InvalidRequestError.code, fields or "invalid request"),
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = str(exc.detail) if exc.status_code < 500 else "internal server error"
        return JSONResponse(problem(exc.status_code, code, message), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))


async def _native_events(run: TurnRun) -> AsyncIterator[str]:
    import json

    async for kind, payload in run.events():
        if kind == "final":
            data: dict[str, Any] = payload.to_dict()
        elif kind == "error":
            data = error_body(payload)
        else:
            data = payload
        yield f"event: {kind}\ndata: {json.dumps(data, default=str, ensure_ascii=False)}\n\n"


# ---------------------------------------------------------------- ingest and summarize


def _multipart_files(body: bytes, content_type: str) -> list[tuple[str, bytes]]:
    """The `file` parts of a multipart/form-data body as (file name, bytes)."""
    header = email.message.Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise InvalidRequestError("send the files as multipart/form-data (field `file`)")
    files: list[tuple[str, bytes]] = []
    for section in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if section.startswith(b"--"):
            break
        head, sep, content = section.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise InvalidRequestError("malformed multipart body")
        part = email.message.Message()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                part[name.strip()] = value.strip()
        if part.get_param("name", header="content-disposition") not in ("file", "files"):
            continue
        filename = part.get_filename()
        if not filename:
            raise InvalidRequestError("every `file` part needs a filename")
        files.append((_safe_name(filename), content.removesuffix(b"\r\n")))
    if not files:
        raise InvalidRequestError("no `file` part in the upload")
    if len(files) > MAX_UPLOAD_FILES:
        raise InvalidRequestError(f"at most {MAX_UPLOAD_FILES} files per upload")
    if len({name for name, _ in files}) != len(files):
        raise InvalidRequestError("two files have the same name")
    return files


def _safe_name(filename: str) -> str:
    """The base name of an uploaded file (no folders, no hidden files)."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name.startswith(".") or "\x00" in name or len(name) > 200:
        raise InvalidRequestError("unusable file name")
    return name


def _ingest_files(
    runtime: ServerRuntime, tenant: str | None, files: list[tuple[str, bytes]]
) -> dict[str, Any]:
    from ragloom.tools.ingest import ingest_paths

    settings = runtime.settings
    with tempfile.TemporaryDirectory(prefix="ragloom-upload-") as folder:
        for name, content in files:
            (Path(folder) / name).write_bytes(content)
        report = ingest_paths(
            [folder], runtime.store, root=folder, tenant=tenant, progress=False,
            chunk_tokens=settings.retrieval.chunk_tokens,
            overlap=settings.retrieval.chunk_overlap,
            max_bytes=settings.server.max_upload_bytes,
        )  # fmt: skip
    data = report.to_dict()
    data.pop("root", None)  # a temporary folder of this server: nothing for the client
    return data


async def _stored_document(runtime: ServerRuntime, tenant: str | None, source: str) -> dict:
    if runtime.store is None:
        raise NotReadyError("this server has no document store")
    chunks = await asyncio.to_thread(runtime.store.get_source, source, tenant=tenant)
    if not chunks:
        raise NotFoundError(f"no ingested source {source[:200]!r}")
    chunks = sorted(chunks, key=lambda c: c.start)
    return {"source": source, "title": chunks[0].title,
            "text": "\n\n".join(c.text for c in chunks)}  # fmt: skip


# ---------------------------------------------------------------- running it


def tune_gc_for_serving() -> None:
    """Freeze what start-up allocated and collect the young generation less often: for 256
    concurrent asks this took 16.2 s to 10.1 s and client CPU per LLM call 8.0 to 5.8 ms
    (`benchmarks/concurrent_asks.py --gc tuned`, benchmarks/RESULTS.md). Process-wide, so only
    `ragloom serve` does it."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def app_factory() -> FastAPI:
    """Entry for uvicorn workers (`ragloom.server:app_factory`, factory=True): each worker
    reads the same settings from the environment and opens its own store and checkpointer."""
    from ragloom.runtime import setup

    return create_app(setup(), tune_process=True)


def serve(settings: Settings, *, host: str, port: int, workers: int = 1) -> None:
    """Run the server (blocking). Refuses a non-loopback `host` without API keys, and
    several workers on a per-process (memory) checkpointer."""
    import uvicorn

    check_bind(host, settings.server)
    if workers > 1 and settings.checkpointer.kind == "memory":
        raise ConfigError(
            "several workers need a shared checkpointer: each worker would keep its own threads",
            setting="checkpointer.kind",
            fix="use RAGLOOM_CHECKPOINTER__KIND=postgres (or sqlite on one machine)",
        )
    options: dict[str, Any] = {
        "host": host, "port": port, "log_config": None, "log_level": settings.log_level.lower(),
        "timeout_graceful_shutdown": 15,
    }  # fmt: skip
    if workers > 1:
        _prepare_shared_state(settings)
        uvicorn.run("ragloom.server:app_factory", factory=True, workers=workers, **options)
    else:
        uvicorn.run(create_app(settings, tune_process=True), **options)


def _prepare_shared_state(settings: Settings) -> None:
    """Create the store's and the checkpointer's tables once, before the workers start (two
    workers migrating a fresh PostgreSQL at once collide on its catalog)."""
    from ragloom.graphs.wiring import Wiring

    with Wiring(settings) as wiring:
        _ = wiring.store, wiring.checkpointer
