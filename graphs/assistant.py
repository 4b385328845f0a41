"""`build_assistant()`: the agentic-RAG state machine.

    START -> start_turn -> route ─┬─ conversation ──────────────────────────────┐
                                  ├─ decline ───────────────────────────────────┤
                                  ├─ summarize ─────────────────────────────────┤
                                  └─ rewrite_query -> retrieve -> grade_documents
                                        ^                 │ too little relevant  │
                                        └─────────────────┘ (bounded)            │
                                     generate_answer <-> check_grounding (once) ─┴-> finalize -> END

Every loop is bounded by the run budget (steps, tokens, seconds, cost) and by no-progress
detection (a rewritten query seen before, a retrieved set seen before, the same grounding verdict
twice). When a bound is hit the assistant answers with what it has and says so in `caveat`.

Each node is written once, as a generator that yields role calls; a driver runs it under
`invoke` (sync role methods) or `ainvoke` (async twins), so both paths share one logic.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from langchain_core.runnables import RunnableConfig
from langgraph._internal._runnable import RunnableCallable
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from ragloom.agents.roles import Draft, Turn, Verdict
from ragloom.core.documents import Chunk, Citation
from ragloom.graphs.assistant_state import (
    AssistantContext,
    AssistantInput,
    AssistantOutput,
    AssistantState,
)
from ragloom.graphs.usage import metered, summarize_usage

log = structlog.get_logger(__name__)

NO_ANSWER = "I could not find anything about this in the documents."
DECLINE = (
    "I can only answer questions about the documents in this collection; "
    "please ask about their content."
)


@dataclass(frozen=True)
class Call:
    """A role call a node body asks its driver to make."""

    sync: Callable[..., Any]
    asynchronous: Callable[..., Any]
    args: tuple[Any, ...]


NodeBody = Generator[Call, Any, dict[str, Any]]


def _drive_sync(body: NodeBody) -> dict[str, Any]:
    try:
        call = next(body)
        while True:
            call = body.send(call.sync(*call.args))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def _drive_async(body: NodeBody) -> dict[str, Any]:
    try:
        call = next(body)
        while True:
            call = body.send(await call.asynchronous(*call.args))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _node(
    name: str,
    body: Callable[[AssistantState, AssistantContext, Runtime[Any]], NodeBody],
    default_context: AssistantContext,
) -> RunnableCallable:
    """Wrap a node body: context lookup, log binding, usage metering, step counting."""

    def context(runtime: Runtime[Any]) -> AssistantContext:
        return runtime.context if runtime.context is not None else default_context

    def finish(state: AssistantState, update: dict[str, Any], record: dict[str, Any]) -> dict:
        update.setdefault("steps", state.get("steps", 0) + 1)
        if "usage_log" not in update:
            update["usage_log"] = [record]
        return update

    def log_keys(state: AssistantState, config: RunnableConfig) -> dict[str, Any]:
        thread_id = (config.get("configurable") or {}).get("thread_id")
        return {"node": name, "run_id": state.get("run_id"), "thread_id": thread_id}

    def run(state: AssistantState, runtime: Runtime[Any], config: RunnableConfig) -> dict:
        tokens = structlog.contextvars.bind_contextvars(**log_keys(state, config))
        try:
            with metered(name) as record:
                update = _drive_sync(body(state, context(runtime), runtime))
        finally:
            structlog.contextvars.reset_contextvars(**tokens)
        return finish(state, update, record)

    async def arun(state: AssistantState, runtime: Runtime[Any], config: RunnableConfig) -> dict:
        tokens = structlog.contextvars.bind_contextvars(**log_keys(state, config))
        try:
            with metered(name) as record:
                update = await _drive_async(body(state, context(runtime), runtime))
        finally:
            structlog.contextvars.reset_contextvars(**tokens)
        return finish(state, update, record)

    return RunnableCallable(run, arun, name=name, trace=False)


# ---------------------------------------------------------------- helpers


def _history(state: AssistantState) -> list[Turn]:
    """Earlier turns of the thread (the current question excluded)."""
    messages = state.get("messages") or []
    return [Turn(role=m["role"], content=m["content"]) for m in messages[:-1]]


def _standalone(state: AssistantState) -> str:
    """The question to grade and answer: as asked on a thread's first turn; later, the
    rewriter's standalone version (a follow-up like "and how do I undo it?" needs the thread)."""
    earlier = (state.get("messages") or [])[:-1]
    return (state.get("query") or state["question"]) if earlier else state["question"]


def _chunks(items: Sequence[dict[str, Any]]) -> list[Chunk]:
    return [Chunk.from_dict(item) for item in items]


def exhausted_budget(state: AssistantState, ctx: AssistantContext) -> str | None:
    """Name of the first exhausted limit (steps, tokens, seconds, cost), or None."""
    budget = ctx.budget
    if state.get("steps", 0) >= budget.max_steps:
        return "steps"
    log_ = state.get("usage_log") or []
    tokens_in = sum(e.get("tokens_in", 0) for e in log_)
    tokens_out = sum(e.get("tokens_out", 0) for e in log_)
    if budget.max_tokens is not None and tokens_in + tokens_out >= budget.max_tokens:
        return "tokens"
    started = state.get("started_at")
    if (
        budget.max_seconds is not None
        and started is not None
        and ctx.clock() - started >= budget.max_seconds
    ):
        return "seconds"
    if budget.max_cost_usd is not None and ctx.price is not None:
        cost = ctx.price(tokens_in, tokens_out)
        if cost is not None and cost >= budget.max_cost_usd:
            return "cost"
    return None


def _result_signature(chunks: Sequence[dict[str, Any]]) -> str:
    return ",".join(sorted(c["id"] for c in chunks))


def _caveat(stop_reason: str | None) -> str | None:
    if not stop_reason:
        return None
    reasons = {
        "no_progress": "the search stopped making progress (same query or same passages again)",
        "max_rewrites": "the search was retried the maximum number of times",
        "ungrounded": "some statements could not be verified against the cited passages "
        "and were removed",
    }
    if stop_reason.startswith("budget:"):
        text = f"the run's {stop_reason.split(':', 1)[1]} budget ran out"
    else:
        text = reasons.get(stop_reason, stop_reason)
    return f"Partial answer: {text}; it may be incomplete."


# ---------------------------------------------------------------- nodes


def start_turn(state: AssistantState, ctx: AssistantContext, runtime: Runtime[Any]) -> NodeBody:
    """Open a turn: record the question, reset per-turn fields, start the clock."""
    question = (state.get("question") or "").strip()
    return {
        "run_id": uuid.uuid4().hex[:16],
        "messages": [{"role": "user", "content": question}],
        "question": question,
        "route": "",
        "target": None,
        "query": "",
        "sub_queries": [],
        "tried_queries": [],
        "seen_results": [],
        "chunks": [],
        "relevant": [],
        "draft": None,
        "verdicts": [],
        "rewrites": 0,
        "regenerations": 0,
        "steps": 1,
        "started_at": ctx.clock(),
        "next_step": "",
        "stop_reason": None,
        "caveat": None,
        "answer": "",
        "citations": [],
        "engine": ctx.roles.engine,
        "usage_log": None,
    }
    yield  # pragma: no cover - makes this a generator like every node body


def route(state: AssistantState, ctx: AssistantContext, runtime: Runtime[Any]) -> NodeBody:
    """Decide: answer from the conversation, retrieve, summarize a document, or decline."""
    if not state["question"]:
        return {"route": "decline", "route_reason": "empty question"}
    router = ctx.roles.router
    decision = yield Call(router.route, router.aroute, (state["question"], _history(state)))
    return {"route": decision.route, "route_reason": decision.reason, "target": decision.target}


def rewrite_query(state: AssistantState, ctx: AssistantContext, runtime: Runtime[Any]) -> NodeBody:
    """Turn the question (and thread) into a standalone search query, broader on retries."""
    tried = list(state.get("tried_queries") or [])
    rewriter = ctx.roles.rewriter
    rewrite = yield Call(
        rewriter.rewrite, rewriter.arewrite, (state["question"], _history(state), len(tried))
    )
    query = rewrite.query.strip() or state["question"]
    update: dict[str, Any] = {
        "query": query,
        "sub_queries": list(rewrite.sub_queries)[:3],
        "tried_queries": [*tried, query],
        "rewrites": len(tried),
        "next_step": "retrieve",
    }
    if query in tried:
        update.update(next_step="generate_answer", stop_reason="no_progress")
    elif tried and (limit := exhausted_budget(state, ctx)) is not None:
        update.update(next_step="generate_answer", stop_reason=f"budget:{limit}")
    return update


def retrieve(state: AssistantState, ctx: AssistantContext, runtime: Runtime[Any]) -> NodeBody:
    """Search (hybrid by default) for the query and each sub-query, merged by best score."""
    queries = [state["query"], *state.get("sub_queries", [])]
    settings = ctx.retrieval
    search = _MultiSearch(ctx, queries, settings.k, settings.mode, settings.alpha)
    hits: list[Chunk] = yield Call(search.run, search.arun, ())
    chunks = [c.to_dict() for c in hits]
    return {
        "chunks": chunks,
        "seen_results": [*state.get("seen_results", []), _result_signature(chunks)],
    }


@dataclass
class _MultiSearch:
    """Run several searches (in parallel under async) and merge them."""

    ctx: AssistantContext
    queries: list[str]
    k: int
    mode: Any
    alpha: float

    def _one(self, query: str) -> list[Chunk]:
        return self.ctx.store.search(
            query, k=self.k, mode=self.mode, alpha=self.alpha, tenant=self.ctx.tenant
        )

    def _merge(self, results: Sequence[list[Chunk]]) -> list[Chunk]:
        best: dict[str, Chunk] = {}
        for hits in results:
            for chunk in hits:
                kept = best.get(chunk.id)
                if kept is None or (chunk.score or 0) > (kept.score or 0):
                    best[chunk.id] = chunk
        ranked = sorted(best.values(), key=lambda c: (-(c.score or 0.0), c.id))
        return ranked[: self.k + 2 * (len(self.queries) - 1)]

    def run(self) -> list[Chunk]:
        return self._merge([self._one(q) for q in self.queries])

    async def arun(self) -> list[Chunk]:
        results = await asyncio.gather(*(asyncio.to_thread(self._one, q) for q in self.queries))
        return self._merge(results)


def grade_documents(
    state: AssistantState, ctx: AssistantContext, runtime: Runtime[Any]
) -> NodeBody:
    """Keep the relevant chunks; decide between answering and another corrective search."""
    chunks = _chunks(state.get("chunks", []))
    grades = []
    if chunks:
        grader = ctx.roles.grader
        grades = yield Call(grader.grade, grader.agrade, (_standalone(state), chunks))
    keep = {g.chunk_id for g in grades if g.relevant}
    relevant = [c.to_dict() for c in chunks if c.id in keep]
    update: dict[str, Any] = {"relevant": relevant}
    if len(relevant) >= ctx.min_relevant:
        update["next_step"] = "generate_answer"
        return update
    seen = state.get("seen_results", [])
    stop = None
    if (limit := exhausted_budget(state, ctx)) is not None:
        stop = f"budget:{limit}"
    elif len(seen) >= 2 and seen[-1] in seen[:-1]:
        stop = "no_progress"
    elif len(state.get("tried_queries", [])) > ctx.budget.max_rewrites:
        stop = "max_rewrites"
    update["next_step"] = "generate_answer" if stop else "rewrite_query"
    update["stop_reason"] = stop
    return update


def generate_answer(
    state: AssistantState, ctx: AssistantContext, runtime: Runtime[Any]
) -> NodeBody:
    """Write a grounded answer in which every claim cites chunk ids."""
    chunks = _chunks(state.get("relevant") or [])
    if not chunks and state.get("stop_reason"):
        chunks = _chunks((state.get("chunks") or [])[:3])  # best effort, flagged by the caveat
    if not chunks:
        return {"draft": Draft(text=NO_ANSWER).to_dict()}
    verdicts = state.get("verdicts") or []
    feedback = ""
    if verdicts and verdicts[-1]["unsupported"]:
        feedback = "These statements were not supported by the cited context; leave them out: " + (
            " | ".join(verdicts[-1]["unsupported"])
        )
    answerer = ctx.roles.answerer
    draft = yield Call(answerer.answer, answerer.aanswer, (_standalone(state), chunks, feedback))
    return {"draft": draft.to_dict(), "relevant": [c.to_dict() for c in chunks]}


def check_grounding(
    state: AssistantState, ctx: AssistantContext, runtime: Runtime[Any]
) -> NodeBody:
    """Are the claims supported by the chunks they cite? Regenerate once, else drop them."""
    draft = _draft(state.get("draft") or Draft(text=NO_ANSWER).to_dict())
    chunks = _chunks(state.get("relevant") or [])
    if not draft.citations or not chunks:
        return {"next_step": "finalize"}
    checker = ctx.roles.grounding
    verdict: Verdict = yield Call(checker.check, checker.acheck, (draft, chunks))
    verdicts = [
        *(state.get("verdicts") or []),
        {"grounded": verdict.grounded, "unsupported": list(verdict.unsupported)},
    ]
    update: dict[str, Any] = {"verdicts": verdicts, "next_step": "finalize"}
    if verdict.grounded:
        return update
    same_again = len(verdicts) >= 2 and verdicts[-1] == verdicts[-2]
    can_retry = (
        state.get("regenerations", 0) < ctx.max_regenerations
        and exhausted_budget(state, ctx) is None
        and not same_again
    )
    if can_retry:
        update.update(next_step="generate_answer", regenerations=state.get("regenerations", 0) + 1)
    else:
        update.update(draft=_drop_claims(draft, set(verdict.unsupported)).to_dict())
        update["stop_reason"] = state.get("stop_reason") or "ungrounded"
    return update


def conversation(state: AssistantState, ctx: AssistantContext, runtime: Runtime[Any]) -> NodeBody:
    """Answer from the thread itself (follow-ups about an earlier answer)."""
    earlier = [m for m in (state.get("messages") or [])[:-1] if m["role"] == "assistant"]
    if not earlier:
        return {"draft": Draft(text=DECLINE).to_dict()}
    chunks = [
        Chunk(id=f"turn-{i}", source="conversation", text=m["content"], score=1.0)
        for i, m in enumerate(earlier[-3:])
    ]
    answerer = ctx.roles.answerer
    draft = yield Call(answerer.answer, answerer.aanswer, (state["question"], chunks, ""))
    return {"draft": Draft(text=draft.text).to_dict()}


def decline(state: AssistantState, ctx: AssistantContext, runtime: Runtime[Any]) -> NodeBody:
    """Politely refuse what the documents cannot answer."""
    return {"draft": Draft(text=DECLINE).to_dict()}
    yield  # pragma: no cover


def summarize(state: AssistantState, ctx: AssistantContext, runtime: Runtime[Any]) -> NodeBody:
    """Summarize the named document with the summarizer graph (as a subgraph)."""
    source = _find_source(ctx, state.get("target") or state["question"])
    if source is None or not ctx.summarizer:
        return {"draft": Draft(text=NO_ANSWER).to_dict(), "stop_reason": "unknown_document"}
    chunks = ctx.store.get_source(source, tenant=ctx.tenant)
    text = "\n\n".join(c.text for c in chunks)
    title = chunks[0].title if chunks else source
    payload = {"documents": [{"source": source, "title": title, "text": text}]}
    summarizer = ctx.summarizer
    result = yield Call(summarizer.invoke, summarizer.ainvoke, (payload,))
    citation = Citation(chunk_id=chunks[0].id, source=source, heading_path=chunks[0].heading_path)
    return {"draft": Draft(text=result["summary"], citations=(citation,)).to_dict()}


def finalize(state: AssistantState, ctx: AssistantContext, runtime: Runtime[Any]) -> NodeBody:
    """Assemble the answer, citations, caveat and usage; append the reply to the thread."""
    draft = _draft(state.get("draft") or Draft(text=NO_ANSWER).to_dict())
    citations = draft.citations  # in marker order: [n] in the text is citations[n-1]
    caveat = _caveat(state.get("stop_reason"))
    usage = summarize_usage(state.get("usage_log") or [], ctx.price)
    usage["steps"] = state.get("steps", 0) + 1
    update = {
        "answer": draft.text,
        "citations": [c.to_dict() for c in citations],
        "caveat": caveat,
        "engine": ctx.roles.engine,
        "usage": usage,
        "messages": [{"role": "assistant", "content": draft.text}],
    }
    runtime.stream_writer(
        {
            "event": "final",
            "answer": draft.text,
            "citations": update["citations"],
            "caveat": caveat,
            "engine": ctx.roles.engine,
        }
    )
    log.info(
        "assistant.answer",
        route=state.get("route"),
        citations=len(citations),
        caveat=bool(caveat),
        engine=ctx.roles.engine,
        llm_calls=usage["llm_calls"],
        tokens_in=usage["tokens_in"],
        tokens_out=usage["tokens_out"],
    )
    return update
    yield  # pragma: no cover


# ---------------------------------------------------------------- routers


def after_route(
    state: AssistantState,
) -> Literal["conversation", "decline", "summarize", "rewrite_query"]:
    choice = state.get("route")
    if choice == "conversation":
        return "conversation"
    if choice == "decline":
        return "decline"
    if choice == "summarize":
        return "summarize"
    return "rewrite_query"


def after_rewrite(state: AssistantState) -> Literal["retrieve", "generate_answer"]:
    return "generate_answer" if state.get("next_step") == "generate_answer" else "retrieve"


def after_grading(state: AssistantState) -> Literal["generate_answer", "rewrite_query"]:
    return "rewrite_query" if state.get("next_step") == "rewrite_query" else "generate_answer"


def after_grounding(state: AssistantState) -> Literal["generate_answer", "finalize"]:
    return "generate_answer" if state.get("next_step") == "generate_answer" else "finalize"


# ---------------------------------------------------------------- small pure helpers


def _draft(data: dict[str, Any]) -> Draft:
    return Draft(
        text=data["text"],
        citations=tuple(Citation.from_dict(c) for c in data.get("citations", [])),
        claims=tuple((s, tuple(ids)) for s, ids in data.get("claims", [])),
    )


def _drop_claims(draft: Draft, unsupported: set[str]) -> Draft:
    """Keep only supported claims (and the citations they use)."""
    if not draft.claims:
        return draft
    kept = [(s, ids) for s, ids in draft.claims if s not in unsupported]
    if not kept:
        return Draft(text=NO_ANSWER)
    used = {i for _, ids in kept for i in ids}
    text = " ".join(f"{s} " + "".join(f"[{i}]" for i in ids) for s, ids in kept).strip()
    return Draft(
        text=text,
        citations=tuple(c for c in draft.citations if c.chunk_id in used),
        claims=tuple(kept),
    )


def _find_source(ctx: AssistantContext, target: str) -> str | None:
    """The ingested source whose path best matches the user's name for it."""
    from ragloom.tools.stores.base import tokenize

    wanted = set(tokenize(target))
    best, best_score = None, 0.0
    for source in ctx.store.sources(tenant=ctx.tenant):
        have = set(tokenize(source))
        score = len(wanted & have) / (len(have) or 1)
        if target.strip() and target.strip() in source:
            score += 1.0
        if score > best_score:
            best, best_score = source, score
    return best


# ---------------------------------------------------------------- graph


def build_assistant_graph(
    context: AssistantContext, *, checkpointer: Any = None
) -> Any:
    """Compile the assistant state machine over a run context (used by `build_assistant`)."""
    builder = StateGraph(
        AssistantState,
        context_schema=AssistantContext,
        input_schema=AssistantInput,
        output_schema=AssistantOutput,
    )
    bodies = {
        "start_turn": start_turn,
        "route": route,
        "conversation": conversation,
        "decline": decline,
        "summarize": summarize,
        "rewrite_query": rewrite_query,
        "retrieve": retrieve,
        "grade_documents": grade_documents,
        "generate_answer": generate_answer,
        "check_grounding": check_grounding,
        "finalize": finalize,
    }
    for name, body in bodies.items():
        builder.add_node(name, _node(name, body, context))
    builder.add_edge(START, "start_turn")
    builder.add_edge("start_turn", "route")
    builder.add_conditional_edges("route", after_route)
    builder.add_edge("conversation", "finalize")
    builder.add_edge("decline", "finalize")
    builder.add_edge("summarize", "finalize")
    builder.add_conditional_edges("rewrite_query", after_rewrite)
    builder.add_edge("retrieve", "grade_documents")
    builder.add_conditional_edges("grade_documents", after_grading)
    builder.add_edge("generate_answer", "check_grounding")
    builder.add_conditional_edges("check_grounding", after_grounding)
    builder.add_edge("finalize", END)
    graph = builder.compile(checkpointer=checkpointer, name="ragloom-assistant")
    return graph.with_config(recursion_limit=max(25, 2 * context.budget.max_steps + 10))


def build_assistant(
    settings: Any = None,
    *,
    store: Any = None,
    llm: Any = None,
    checkpointer: Any = None,
    embedder: Any = None,
    roles: Any = None,
    summarizer: Any = None,
    tenant: str | None = None,
    clock: Callable[[], float] | None = None,
) -> Any:
    """A compiled LangGraph assistant: cited answers over your documents, with memory.

    Defaults come from `settings` (read from the environment when None): the embedded store,
    the SQLite checkpointer, and the engine settings pick (`openai` when a key or base URL is
    set, else `extractive`). Pass `llm` (an `LLMGateway`, or any LangChain chat model) to use a
    model explicitly, `roles` to supply agent roles yourself, `checkpointer=False` for no
    memory. Nothing connects at import; calling this opens the store and checkpointer.

    Use: `graph.invoke({"question": "..."}, {"configurable": {"thread_id": "t1"}})`.
    """
    from ragloom.core.settings import load_settings

    settings = settings or load_settings()
    if store is None:
        from ragloom.core.embedders import build_embedder
        from ragloom.tools.stores import build_store

        embedder = embedder or build_embedder(settings)
        store = build_store(settings, embedder)
    if roles is None:
        from ragloom.agents.factory import assistant_roles

        roles = assistant_roles(settings, llm=llm, embedder=embedder)
    if summarizer is None:
        from ragloom.graphs.summarizer import build_summarizer

        summarizer = build_summarizer(settings, llm=llm, checkpointer=False)
    if checkpointer is None:
        from ragloom.graphs.checkpointers import build_checkpointer

        checkpointer = build_checkpointer(settings.checkpointer)
    context = AssistantContext(
        store=store,
        roles=roles,
        budget=settings.budget,
        retrieval=settings.retrieval,
        summarizer=summarizer,
        tenant=tenant if tenant is not None else settings.store.tenant,
        price=_pricer(getattr(roles, "model", None)),
    )
    if clock is not None:
        context.clock = clock
    return build_assistant_graph(context, checkpointer=checkpointer or None)


def _pricer(model: str | None) -> Callable[[int, int], float | None] | None:
    """Token price of the roles' model (None without a model, or a model without a price)."""
    if model is None:
        return None
    from ragloom.core.pricing import cost_usd

    return functools.partial(cost_usd, model)


def make_assistant() -> Any:
    """Entry for `langgraph.json`: the LangGraph server supplies its own checkpointer."""
    return build_assistant(checkpointer=False)
