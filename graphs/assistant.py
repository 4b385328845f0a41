"""`build_assistant()`: the agentic-RAG state machine.

    START -> start_turn -> route ─┬─ conversation ──────────────────────────────┐
       (route and first query     ├─ decline ───────────────────────────────────┤
        in one round trip)        ├─ summarize ─────────────────────────────────┤
                                  └─────────────────> retrieve -> grade_documents
                                                       ^          │ too little   │
                                    rewrite_query ─────┘ <────────┤ relevant     │
                                    clarify (opt-in: ask the user) <┘ (bounded)  │
                                     generate_answer <-> check_grounding (once) ─┴-> finalize -> END

The thread is `messages` (LangChain messages): a turn starts from the newest human message (or
the `question` shorthand) and ends with one `AIMessage` carrying the cited answer, its citations
in `response_metadata`. Every loop is bounded by the run budget (steps, tokens, seconds, cost)
and by no-progress detection (a rewritten query seen before, a retrieved set seen before, the
same grounding verdict twice). When a bound is hit the assistant answers with what it has and
says so in `caveat`. Opt-in review points pause the run with `interrupt()` (see
`AssistantContext.review`); resume with `Command(resume=...)`.

Nodes are written once with the node kit (`ragloom.graphs.nodes`) and run under both `invoke`
and `ainvoke`.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

import structlog
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, RemoveMessage
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from ragloom.agents.roles import Draft, Turn, Verdict
from ragloom.core.documents import Chunk, Citation
from ragloom.core.text import clean_query
from ragloom.core.usage import summarize_usage
from ragloom.graphs.assistant_state import (
    AssistantContext,
    AssistantDeps,
    AssistantInput,
    AssistantOutput,
    AssistantState,
    ReviewPoint,
)
from ragloom.graphs.nodes import NodeKit, Step, Update, call, call_together
from ragloom.graphs.streaming import AnswerTokenStream

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.graph.state import CompiledStateGraph

    from ragloom.core.embedders import Embedder
    from ragloom.core.llm import LLMGateway
    from ragloom.core.settings import Settings
    from ragloom.tools.stores.base import ChunkStore

log = structlog.get_logger(__name__)

NO_ANSWER = "I could not find anything about this in the documents."
DECLINE = (
    "I can only answer questions about the documents in this collection; "
    "please ask about their content."
)


# ---------------------------------------------------------------- helpers


def _text(message: AnyMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(
        part.get("text", "") if isinstance(part, dict) else str(part) for part in content
    ).strip()


def _history(state: AssistantState, deps: AssistantDeps) -> list[Turn]:
    """Earlier turns of the thread (the current question and unfinished turns excluded), the
    newest `deps.history_turns` user/assistant pairs."""
    messages = state.get("messages") or []
    current = state.get("open_turn")
    turns: list[Turn] = []
    for message in messages:
        if message.id == current:
            continue
        if isinstance(message, HumanMessage):
            turns.append(Turn(role="user", content=_text(message)))
        elif isinstance(message, AIMessage) and _text(message):
            turns.append(Turn(role="assistant", content=_text(message)))
    return turns[-2 * deps.history_turns :]


def _standalone(state: AssistantState, deps: AssistantDeps) -> str:
    """The question to grade and answer: as asked on a thread's first turn; later, the
    rewriter's standalone version (a follow-up like "and how do I undo it?" needs the thread)."""
    if _history(state, deps):
        return state.get("query") or state["question"]
    return state["question"]


def _chunks(items: Sequence[dict[str, Any]]) -> list[Chunk]:
    return [Chunk.from_dict(item) for item in items]


def _options(runtime: Runtime[Any]) -> AssistantContext:
    """The run's context as the dataclass, whether the caller passed one, a dict or nothing."""
    context = runtime.context
    if isinstance(context, AssistantContext):
        return context
    if isinstance(context, dict):
        known = {k: v for k, v in context.items() if k in ("tenant", "review")}
        return AssistantContext(**known)
    return AssistantContext()


def _tenant(deps: AssistantDeps, runtime: Runtime[Any]) -> str | None:
    return _options(runtime).tenant or deps.tenant


def _reviews(deps: AssistantDeps, runtime: Runtime[Any], point: ReviewPoint) -> bool:
    return point in deps.review or point in _options(runtime).review


def exhausted_budget(state: AssistantState, deps: AssistantDeps) -> str | None:
    """Name of the first exhausted limit (steps, tokens, seconds, cost), or None."""
    budget = deps.budget
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
        and deps.clock() - started >= budget.max_seconds
    ):
        return "seconds"
    if budget.max_cost_usd is not None and deps.price is not None:
        cost = deps.price(tokens_in, tokens_out)
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
        "empty_store": "there are no documents to search (nothing is ingested for this tenant)",
        "unchecked": "the grounding check's reply could not be read, so the answer is unverified",
    }
    if stop_reason.startswith("budget:"):
        text = f"the run's {stop_reason.split(':', 1)[1]} budget ran out"
    else:
        text = reasons.get(stop_reason, stop_reason)
    return f"Partial answer: {text}; it may be incomplete."


# ---------------------------------------------------------------- nodes


def start_turn(state: AssistantState, deps: AssistantDeps, runtime: Runtime[Any]) -> Update:
    """Open a turn: take the question (the newest human message, or the `question` shorthand),
    drop a turn a crash left unanswered, reset per-turn fields, start the clock."""
    messages = list(state.get("messages") or [])
    shorthand = clean_query(state.get("question") or "")
    added: list[AnyMessage] = []
    if shorthand:
        human: AnyMessage | None = HumanMessage(content=shorthand, id=str(uuid.uuid4()))
        added.append(cast(AnyMessage, human))
    else:
        human = messages[-1] if messages and isinstance(messages[-1], HumanMessage) else None
    dangling = state.get("open_turn")
    unfinished = dangling and (human is None or dangling != human.id)
    if unfinished and any(m.id == dangling for m in messages):
        added.insert(0, cast(AnyMessage, RemoveMessage(id=str(dangling))))
        log.warning("assistant.unfinished_turn_dropped", message_id=dangling)
    question = clean_query(_text(human)) if human is not None else ""
    return {
        "run_id": uuid.uuid4().hex[:16],
        "messages": added,
        "open_turn": human.id if human is not None else None,
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
        "started_at": deps.clock(),
        "next_step": "",
        "stop_reason": None,
        "caveat": None,
        "answer": "",
        "citations": [],
        "engine": deps.roles.engine,
        "usage_log": None,
    }


def route(state: AssistantState, deps: AssistantDeps, runtime: Runtime[Any]) -> Step:
    """Decide (answer from the conversation, retrieve, summarize a document, or decline) and,
    at the same time, write the search query, so the happy path waits for one LLM round trip
    instead of two."""
    if not state["question"]:
        return {"route": "decline", "route_reason": "empty question"}
    history = _history(state, deps)

    def decided(results: list[Any]) -> Update:
        decision, rewrite = results
        return {
            "route": decision.route, "route_reason": decision.reason, "target": decision.target,
            **_rewritten(state, deps, rewrite, tried=[]),
        }  # fmt: skip

    return call_together(
        call(deps.roles.router.route, state["question"], history),
        call(deps.roles.rewriter.rewrite, state["question"], history, 0),
    ).then(decided)


def _rewritten(
    state: AssistantState, deps: AssistantDeps, rewrite: Any, tried: list[str]
) -> Update:
    """The update for a rewritten query: the query, its sub-queries, and a stop when the query
    repeats an earlier one or (on a retry) the budget is spent."""
    query = rewrite.query.strip() or state["question"]
    update: Update = {
        "query": query,
        "sub_queries": list(rewrite.sub_queries)[:3],
        "tried_queries": [*tried, query],
        "rewrites": len(tried),
        "next_step": "retrieve",
    }
    if query in tried:
        update.update(next_step="generate_answer", stop_reason="no_progress")
    elif tried and (limit := exhausted_budget(state, deps)) is not None:
        update.update(next_step="generate_answer", stop_reason=f"budget:{limit}")
    return update


def rewrite_query(
    state: AssistantState, deps: AssistantDeps, runtime: Runtime[Any]
) -> Step:
    """A broader standalone search query for another corrective search (the first query is
    written by `route`)."""
    tried = list(state.get("tried_queries") or [])
    history = _history(state, deps)
    return call(deps.roles.rewriter.rewrite, state["question"], history, len(tried)).then(
        lambda rewrite: _rewritten(state, deps, rewrite, tried)
    )


def retrieve(
    state: AssistantState, deps: AssistantDeps, runtime: Runtime[Any]
) -> Step:
    """Search (hybrid by default) for the query and each sub-query, merged by best score.

    Review point `query`: the run pauses with the query; resume with `{"action": "approve"}` or
    `{"action": "edit", "value": "new query"}`."""
    query = state["query"]
    update: Update = {}
    if _reviews(deps, runtime, "query"):
        reply = _review("query", {"query": query, "question": state["question"]})
        if reply["action"] == "edit" and str(reply.get("value") or "").strip():
            query = str(reply["value"]).strip()
            update["query"] = query
    search = _MultiSearch(deps, _tenant(deps, runtime), [query, *state.get("sub_queries", [])])

    def found(hits: list[Chunk]) -> Update:
        chunks = [c.to_dict() for c in hits]
        return {
            **update,
            "chunks": chunks,
            "seen_results": [*state.get("seen_results", []), _result_signature(chunks)],
        }

    return call(search.run).then(found)


class _MultiSearch:
    """Run several searches (in parallel under async), merge them by best score, with a
    reranker reorder the first `rerank_depth` for the first query, and let no source fill more
    than `max_chunks_per_source` of the passages (so they span more documents)."""

    def __init__(self, deps: AssistantDeps, tenant: str | None, queries: list[str]) -> None:
        self.deps, self.tenant, self.queries = deps, tenant, queries
        self.reranker = deps.reranker
        settings = deps.retrieval
        self.cap = settings.max_chunks_per_source
        self.depth = max(settings.k, settings.rerank_depth) if self.reranker else settings.k
        self.fetch = max(self.depth, 4 * settings.k) if self.cap else self.depth
        self.limit = settings.k + 2 * (len(queries) - 1)

    def _one(self, query: str) -> list[Chunk]:
        settings = self.deps.retrieval
        return self.deps.store.search(
            query, k=self.fetch, mode=settings.mode, alpha=settings.alpha, tenant=self.tenant
        )

    def _merge(self, results: Sequence[list[Chunk]]) -> list[Chunk]:
        best: dict[str, Chunk] = {}
        for hits in results:
            for chunk in hits:
                kept = best.get(chunk.id)
                if kept is None or (chunk.score or 0) > (kept.score or 0):
                    best[chunk.id] = chunk
        return sorted(best.values(), key=lambda c: (-(c.score or 0.0), c.id))

    def _passages(self, ranked: list[Chunk]) -> list[Chunk]:
        if self.cap:
            per_source: Counter[str] = Counter()
            capped = []
            for chunk in ranked:
                per_source[chunk.source] += 1
                if per_source[chunk.source] <= self.cap:
                    capped.append(chunk)
            ranked = capped
        return ranked[: self.limit]

    def run(self) -> list[Chunk]:
        merged = self._merge([self._one(q) for q in self.queries])
        if self.reranker is not None:
            head = self.reranker.rerank(self.queries[0], merged[: self.depth])
            merged = [*head, *merged[self.depth:]]
        return self._passages(merged)

    async def arun(self) -> list[Chunk]:
        results = await asyncio.gather(*(asyncio.to_thread(self._one, q) for q in self.queries))
        merged = self._merge(results)
        if self.reranker is not None:
            twin = getattr(self.reranker, "arerank", None)
            head = merged[: self.depth]
            head = await (twin(self.queries[0], head) if twin is not None else
                          asyncio.to_thread(self.reranker.rerank, self.queries[0], head))
            merged = [*head, *merged[self.depth:]]
        return self._passages(merged)


def grade_documents(
    state: AssistantState, deps: AssistantDeps, runtime: Runtime[Any]
) -> Step:
    """Keep the relevant chunks; decide between answering, another corrective search, and
    (review point `clarify`) asking the user."""
    chunks = _chunks(state.get("chunks", []))

    def graded(grades: Sequence[Any]) -> Update:
        keep = {g.chunk_id for g in grades if g.relevant}
        relevant = [c.to_dict() for c in chunks if c.id in keep]
        update: Update = {"relevant": relevant}
        if len(relevant) >= deps.min_relevant:
            update["next_step"] = "generate_answer"
            return update
        seen = state.get("seen_results", [])
        stop = None
        if (limit := exhausted_budget(state, deps)) is not None:
            stop = f"budget:{limit}"
        elif len(seen) >= 2 and seen[-1] in seen[:-1]:
            stop = "no_progress"
        elif len(state.get("tried_queries", [])) > deps.budget.max_rewrites:
            stop = "max_rewrites"
        if stop and not relevant and _reviews(deps, runtime, "clarify") and not _clarified(state):
            update["next_step"] = "clarify"
            return update
        update["next_step"] = "generate_answer" if stop else "rewrite_query"
        update["stop_reason"] = stop
        return update

    if not chunks and not state.get("relevant") and not deps.store.sources(
        tenant=_tenant(deps, runtime)
    ):
        return {"relevant": [], "next_step": "generate_answer", "stop_reason": "empty_store"}
    if not chunks:
        return graded([])
    question = _standalone(state, deps)
    grading = call(deps.roles.grader.grade, question, chunks)
    if not _speculate(state, deps, runtime):
        return grading.then(graded)

    def speculated(results: list[Any]) -> Update:
        grades, draft = results
        update = graded(grades)
        if update["next_step"] != "generate_answer" or update.get("stop_reason"):
            return update  # corrective path: the early draft is not used
        keep = {c["id"] for c in update["relevant"]} | {c.chunk_id for c in draft.citations}
        update.update(relevant=[c.to_dict() for c in chunks if c.id in keep],
                      draft=draft.to_dict(), next_step="check_grounding")  # fmt: skip
        return update

    early = _EarlyAnswer(chunks, _answer_id(state))
    enough = deps.min_relevant
    return call_together(
        grading.when_done(lambda grades: early.settle(sum(g.relevant for g in grades) >= enough)),
        call(deps.roles.answerer.answer, question, chunks, "").listening(early.listen),
    ).then(speculated)


def _speculate(state: AssistantState, deps: AssistantDeps, runtime: Runtime[Any]) -> bool:
    """Answer beside the first grading of a turn (LLM engines): when grading keeps enough, the
    answer is ready one round trip sooner; otherwise it is dropped unseen."""
    return (
        deps.speculative
        and len(state.get("seen_results") or []) == 1
        and not state.get("regenerations")
        and not _reviews(deps, runtime, "passages")
    )


class _EarlyAnswer:
    """The token stream of an answer written beside grading: held until grading says the
    passages suffice (then streamed), or dropped unseen."""

    def __init__(self, chunks: Sequence[Chunk], message_id: str) -> None:
        self.chunks, self.message_id = chunks, message_id
        self.verdict: bool | None = None
        self.stream: AnswerTokenStream | None = None
        self.lock = threading.Lock()

    def listen(self, visible: Any) -> AnswerTokenStream:
        with self.lock:
            self.stream = AnswerTokenStream(visible, self.chunks, self.message_id, hold=True)
            self._apply()
            return self.stream

    def settle(self, enough: bool) -> None:
        with self.lock:
            self.verdict = enough
            self._apply()

    def _apply(self) -> None:
        if self.stream is None or self.verdict is None:
            return
        if self.verdict:
            self.stream.release()
        else:
            self.stream.discard()


def _clarified(state: AssistantState) -> bool:
    return any(q.startswith("clarified:") for q in state.get("tried_queries") or [])


def clarify(state: AssistantState, deps: AssistantDeps, runtime: Runtime[Any]) -> Update:
    """Review point `clarify`: nothing relevant was found, so ask the user; resume with the
    clarification (`{"action": "edit", "value": "..."}` or a plain string), or
    `{"action": "reject"}` to answer with a caveat instead."""
    reply = _review(
        "clarify",
        {"question": state["question"], "message": "I found nothing relevant. Can you say more?"},
    )
    extra = str(reply.get("value") or "").strip()
    if reply["action"] == "reject" or not extra:
        return {"next_step": "generate_answer", "stop_reason": "no_progress"}
    return {
        "question": f"{state['question']} {extra}",
        "tried_queries": ["clarified:" + extra],
        "seen_results": [],
        "next_step": "rewrite_query",
    }


def generate_answer(
    state: AssistantState, deps: AssistantDeps, runtime: Runtime[Any]
) -> Step:
    """Write a grounded answer in which every claim cites chunk ids.

    Review point `passages`: the run pauses with the passages; resume with `{"action":
    "approve"}` or `{"action": "edit", "value": [chunk ids to keep]}`."""
    chunks = _chunks(state.get("relevant") or [])
    if not chunks and state.get("stop_reason"):
        chunks = _chunks((state.get("chunks") or [])[:3])  # best effort, flagged by the caveat
    if chunks and _reviews(deps, runtime, "passages") and not state.get("verdicts"):
        reply = _review("passages", {"question": state["question"],
                                     "passages": [c.to_dict() for c in chunks]})  # fmt: skip
        if reply["action"] == "edit" and isinstance(reply.get("value"), list):
            keep = set(reply["value"])
            chunks = [c for c in chunks if c.id in keep]
    if not chunks:
        return {"draft": Draft(text=NO_ANSWER).to_dict(), "relevant": []}
    verdicts = state.get("verdicts") or []
    feedback = ""
    if verdicts and verdicts[-1]["unsupported"]:
        feedback = "These statements were not supported by the cited context; leave them out: " + (
            " | ".join(verdicts[-1]["unsupported"])
        )

    def drafted(draft: Draft) -> Update:
        return {"draft": draft.to_dict(), "relevant": [c.to_dict() for c in chunks]}

    answerer = deps.roles.answerer
    answering = call(answerer.answer, _standalone(state, deps), chunks, feedback)
    if state.get("regenerations"):  # a regenerated draft is not streamed a second time
        return answering.then(drafted)
    message_id = _answer_id(state)
    return answering.listening(
        lambda visible: AnswerTokenStream(visible, chunks, message_id)
    ).then(drafted)


def _answer_id(state: AssistantState) -> str:
    """The id of the turn's answer message (streamed chunks carry it too)."""
    return f"answer-{state.get('run_id') or 'turn'}"


def check_grounding(
    state: AssistantState, deps: AssistantDeps, runtime: Runtime[Any]
) -> Step:
    """Are the claims supported by the chunks they cite? Regenerate once, else drop them."""
    draft = _draft(state.get("draft") or Draft(text=NO_ANSWER).to_dict())
    chunks = _chunks(state.get("relevant") or [])
    if not draft.citations or not chunks:
        return {"next_step": "finalize"}

    def checked(verdict: Verdict) -> Update:
        verdicts = [
            *(state.get("verdicts") or []),
            {"grounded": verdict.grounded, "unsupported": list(verdict.unsupported)},
        ]
        update: Update = {"verdicts": verdicts, "next_step": "finalize"}
        if verdict.grounded:
            if getattr(verdict, "caveat", None):  # the check itself could not be read
                update["stop_reason"] = state.get("stop_reason") or "unchecked"
            return update
        same_again = len(verdicts) >= 2 and verdicts[-1] == verdicts[-2]
        can_retry = (
            state.get("regenerations", 0) < deps.max_regenerations
            and exhausted_budget(state, deps) is None
            and not same_again
        )
        if can_retry:
            update.update(
                next_step="generate_answer", regenerations=state.get("regenerations", 0) + 1
            )
        else:
            update.update(draft=_drop_claims(draft, set(verdict.unsupported)).to_dict())
            update["stop_reason"] = state.get("stop_reason") or "ungrounded"
        return update

    return call(deps.roles.grounding.check, draft, chunks).then(checked)


def conversation(
    state: AssistantState, deps: AssistantDeps, runtime: Runtime[Any]
) -> Step:
    """Answer from the thread itself (follow-ups about an earlier answer)."""
    earlier = [t for t in _history(state, deps) if t.role == "assistant"]
    if not earlier:
        return {"draft": Draft(text=DECLINE).to_dict()}
    chunks = [
        Chunk(id=f"turn-{i}", source="conversation", text=t.content, score=1.0)
        for i, t in enumerate(earlier[-3:])
    ]

    def answered(draft: Draft) -> Update:
        return {"draft": Draft(text=draft.text).to_dict()}

    return call(deps.roles.answerer.answer, state["question"], chunks, "").then(answered)


def decline(state: AssistantState, deps: AssistantDeps, runtime: Runtime[Any]) -> Update:
    """Politely refuse what the documents cannot answer."""
    return {"draft": Draft(text=DECLINE).to_dict()}


def summarize(
    state: AssistantState, deps: AssistantDeps, runtime: Runtime[Any]
) -> Step:
    """Summarize the named document with the summarizer graph (as a subgraph)."""
    tenant = _tenant(deps, runtime)
    source = _find_source(deps, tenant, state.get("target") or state["question"])
    if source is None or not deps.summarizer:
        return {"draft": Draft(text=NO_ANSWER).to_dict(), "stop_reason": "unknown_document"}
    chunks = deps.store.get_source(source, tenant=tenant)
    text = "\n\n".join(c.text for c in chunks)
    title = chunks[0].title if chunks else source
    payload = {"documents": [{"source": source, "title": title, "text": text}]}
    citation = Citation(chunk_id=chunks[0].id, source=source, heading_path=chunks[0].heading_path)

    def summarized(result: dict[str, Any]) -> Update:
        return {"draft": Draft(text=result["summary"], citations=(citation,)).to_dict()}

    return call(deps.summarizer.invoke, payload).then(summarized)


def finalize(state: AssistantState, deps: AssistantDeps, runtime: Runtime[Any]) -> Update:
    """Assemble the answer, citations, caveat and usage; append the reply to the thread.

    Review point `answer`: the run pauses with the draft; resume with `{"action": "approve"}`
    or `{"action": "edit", "value": "the answer text to send"}`."""
    draft = _draft(state.get("draft") or Draft(text=NO_ANSWER).to_dict())
    if _reviews(deps, runtime, "answer"):
        reply = _review("answer", {"question": state["question"], "draft": draft.to_dict()})
        if reply["action"] == "edit" and str(reply.get("value") or "").strip():
            draft = Draft(text=str(reply["value"]).strip(), citations=draft.citations)
    citations = [c.to_dict() for c in draft.citations]  # [n] in the text is citations[n-1]
    caveat = _caveat(state.get("stop_reason"))
    usage = summarize_usage(state.get("usage_log") or [], deps.price)
    usage["steps"] = state.get("steps", 0) + 1
    engine = deps.roles.engine
    reply_message = AIMessage(
        content=draft.text,
        id=_answer_id(state),
        name="ragloom",
        response_metadata={
            "citations": citations, "engine": engine, "caveat": caveat,
            "route": state.get("route"), "usage": usage,
        },
    )  # fmt: skip
    runtime.stream_writer(
        {"event": "final", "answer": draft.text, "citations": citations, "caveat": caveat,
         "engine": engine}
    )  # fmt: skip
    log.info(
        "assistant.answer",
        route=state.get("route"),
        citations=len(citations),
        caveat=bool(caveat),
        engine=engine,
        llm_calls=usage["llm_calls"],
        tokens_in=usage["tokens_in"],
        tokens_out=usage["tokens_out"],
    )
    return {
        "answer": draft.text,
        "citations": citations,
        "caveat": caveat,
        "engine": engine,
        "usage": usage,
        "messages": [*_trimmed(state, deps), reply_message],
        "open_turn": None,
        "question": "",
    }


def _trimmed(state: AssistantState, deps: AssistantDeps) -> list[AnyMessage]:
    """Removals that keep the thread's checkpoint at `deps.max_messages` (oldest first, whole
    turns) once this turn's reply is added."""
    messages = state.get("messages") or []
    excess = len(messages) + 1 - deps.max_messages
    if excess <= 0:
        return []
    cut = excess
    while cut < len(messages) and not isinstance(messages[cut], HumanMessage):
        cut += 1  # never start the kept thread with a reply
    return [cast(AnyMessage, RemoveMessage(id=m.id)) for m in messages[:cut] if m.id]


def _review(point: ReviewPoint, payload: dict[str, Any]) -> dict[str, Any]:
    """Pause for a human (LangGraph `interrupt`); the resume value is normalised to
    `{"action": "approve" | "edit" | "reject", "value": ...}` (a bare value means edit)."""
    reply = interrupt({"review": point, **payload})
    if isinstance(reply, dict) and reply.get("action") in ("approve", "edit", "reject"):
        return reply
    if reply is None or reply is True or reply == "approve":
        return {"action": "approve"}
    return {"action": "edit", "value": reply}


# ---------------------------------------------------------------- routers


def after_route(
    state: AssistantState,
) -> Literal["conversation", "decline", "summarize", "retrieve", "generate_answer"]:
    choice = state.get("route")
    if choice == "conversation":
        return "conversation"
    if choice == "decline":
        return "decline"
    if choice == "summarize":
        return "summarize"
    return "generate_answer" if state.get("next_step") == "generate_answer" else "retrieve"


def after_rewrite(state: AssistantState) -> Literal["retrieve", "generate_answer"]:
    return "generate_answer" if state.get("next_step") == "generate_answer" else "retrieve"


def after_grading(
    state: AssistantState,
) -> Literal["generate_answer", "rewrite_query", "clarify", "check_grounding"]:
    step = state.get("next_step")
    if step in ("rewrite_query", "clarify", "check_grounding"):
        return step  # type: ignore[return-value]
    return "generate_answer"


def after_clarify(state: AssistantState) -> Literal["generate_answer", "rewrite_query"]:
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


def _find_source(deps: AssistantDeps, tenant: str | None, target: str) -> str | None:
    """The ingested source whose path best matches the user's name for it."""
    from ragloom.core.text import tokenize

    wanted = set(tokenize(target))
    best, best_score = None, 0.0
    for source in deps.store.sources(tenant=tenant):
        have = set(tokenize(source))
        score = len(wanted & have) / (len(have) or 1)
        if target.strip() and target.strip() in source:
            score += 1.0
        if score > best_score:
            best, best_score = source, score
    return best


# ---------------------------------------------------------------- graph


def _count_step(state: AssistantState, update: Update) -> Update:
    update.setdefault("steps", state.get("steps", 0) + 1)
    return update


def build_assistant_graph(
    deps: AssistantDeps, *, checkpointer: BaseCheckpointSaver[str] | None = None
) -> CompiledStateGraph[AssistantState, AssistantContext, AssistantInput, AssistantOutput]:
    """Compile the assistant state machine over its dependencies (the wiring module calls this;
    tests call it with scripted roles)."""
    builder = StateGraph(
        AssistantState,
        context_schema=AssistantContext,
        input_schema=AssistantInput,
        output_schema=AssistantOutput,
    )
    kit = NodeKit(deps, finish=_count_step)
    bodies = {
        "start_turn": start_turn,
        "route": route,
        "conversation": conversation,
        "decline": decline,
        "summarize": summarize,
        "rewrite_query": rewrite_query,
        "retrieve": retrieve,
        "grade_documents": grade_documents,
        "clarify": clarify,
        "generate_answer": generate_answer,
        "check_grounding": check_grounding,
        "finalize": finalize,
    }
    for name, body in bodies.items():
        builder.add_node(name, kit.node(name, body))
    builder.add_edge(START, "start_turn")
    builder.add_edge("start_turn", "route")
    builder.add_conditional_edges("route", after_route)
    builder.add_edge("conversation", "finalize")
    builder.add_edge("decline", "finalize")
    builder.add_edge("summarize", "finalize")
    builder.add_conditional_edges("rewrite_query", after_rewrite)
    builder.add_edge("retrieve", "grade_documents")
    builder.add_conditional_edges("grade_documents", after_grading)
    builder.add_conditional_edges("clarify", after_clarify)
    builder.add_edge("generate_answer", "check_grounding")
    builder.add_conditional_edges("check_grounding", after_grounding)
    builder.add_edge("finalize", END)
    graph = builder.compile(checkpointer=checkpointer, name="ragloom-assistant")
    return graph.with_config(recursion_limit=max(25, 2 * deps.budget.max_steps + 10))  # type: ignore[return-value]


def build_assistant(
    settings: Settings | None = None,
    *,
    store: ChunkStore | None = None,
    llm: LLMGateway | BaseChatModel | None = None,
    embedder: Embedder | None = None,
    checkpointer: BaseCheckpointSaver[str] | None = None,
    persist: bool = True,
    tenant: str | None = None,
) -> CompiledStateGraph[AssistantState, AssistantContext, AssistantInput, AssistantOutput]:
    """A compiled LangGraph assistant: cited answers over your documents, with memory.

    Everything not passed comes from `settings` (read from the environment, `.env` and
    `ragloom.toml` when None) through the wiring module: the embedded store, the SQLite
    checkpointer, and the engine settings pick (`openai` when a key or base URL is set, else
    `extractive`). `llm` is an `LLMGateway` or any LangChain chat model; `store` brings its own
    embedder; `persist=False` compiles without a checkpointer. Nothing connects at import; this
    call opens the store and checkpointer (use `ragloom.graphs.wiring.Wiring` as a context
    manager to close them).

    Use: `graph.invoke({"messages": [("user", "...")]}, {"configurable": {"thread_id": "t1"}})`
    or the shorthand `{"question": "..."}`.
    """
    from ragloom.graphs.wiring import Wiring

    wiring = Wiring(settings, store=store, llm=llm, embedder=embedder, checkpointer=checkpointer)
    return wiring.assistant(persist=persist, tenant=tenant)


async def make_assistant() -> (
    CompiledStateGraph[AssistantState, AssistantContext, AssistantInput, AssistantOutput]
):
    """Entry for `langgraph.json`: LangGraph's server supplies persistence. Built once per
    process, in a worker thread (opening the store and loading a model block)."""
    from ragloom.graphs.wiring import platform_wiring

    return await asyncio.to_thread(lambda: platform_wiring().assistant(persist=False))
