"""The `openai` engine: every role in `ragloom.agents.roles` as a DSPy program over a signature.

Each role holds the LM it calls (a `dspy.BaseLM`, normally the gateway's adapter) and runs every
call inside `dspy.context(lm=...)`, so nothing is configured globally. Programs come from
`ragloom.prompts.programs` (fresh) or the prompt registry (compiled artefacts). Chunks are
quoted into prompts as labelled data (`[c1] (source — heading)`, with label look-alikes in the
text escaped); citations are read back from those labels.

Malformed replies, one mechanism for every role (`DSPyRole._run`): a reply that does not follow
the signature's fields (or a response body that is not JSON) is asked again `parse_retries`
times (default once, with a fresh rollout id so no cache hands back the same reply); if it is
still malformed the role falls back where a safe fallback exists and raises
`MalformedResponseError` (code `malformed`) where none does:

    router     -> retrieve                 rewriter -> search with the question itself
    grader     -> keep the chunk           grounding -> keep the draft, `Verdict.caveat` says so
    answerer, map/reduce summarizers -> MalformedResponseError
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import dspy
import structlog

from ragloom.agents.roles import (
    Draft,
    Grade,
    Rewrite,
    RouteDecision,
    SectionSummary,
    SummaryLength,
    Turn,
    Verdict,
)
from ragloom.core.documents import Chunk, Citation
from ragloom.core.errors import MalformedResponseError, ProviderError, RagloomError
from ragloom.prompts.metrics import clamp_score
from ragloom.prompts.programs import (
    SignatureProgram,
    best_quote,
    build_program,
    chunk_labels,
    defuse,
    format_context,
    format_history,
    format_passage,
    make_adapter,
    number_citations,
    split_claims,
)

log = structlog.get_logger(__name__)
ENGINE = "openai"
ROUTES = ("conversation", "retrieve", "summarize", "decline")
GRADE_CONCURRENCY = 4
PARSE_RETRIES = 1
UNCHECKED_CAVEAT = (
    "the answer could not be checked against its passages (the checker's reply was unreadable)"
)

T = TypeVar("T")
Fallback = Callable[[MalformedResponseError], T]


class DSPyRole:
    """Shared plumbing: a program, an LM, scoped DSPy context, typed errors, and the one
    malformed-reply policy (`_run` / `_arun`: ask again, then fall back or raise)."""

    engine = ENGINE
    module_name = ""

    def __init__(
        self,
        lm: dspy.BaseLM,
        program: dspy.Module | None = None,
        *,
        parse_retries: int = PARSE_RETRIES,
    ) -> None:
        self.lm = lm
        self.program = program if program is not None else build_program(self.module_name)
        self.adapter = make_adapter()
        self.parse_retries = max(0, parse_retries)

    def _inputs_for(self, inputs: dict[str, Any], attempt: int) -> dict[str, Any]:
        """A retry asks for a fresh reply: DSPy's rollout id also salts the gateway's cache."""
        if attempt and isinstance(self.program, SignatureProgram):
            return {**inputs, "config": {"rollout_id": attempt}}
        return inputs

    def _call(self, **inputs: Any) -> dspy.Prediction:
        """One program call; DSPy parse failures become `MalformedResponseError`."""
        with dspy.context(lm=self.lm, adapter=self.adapter), _typed_errors(self.module_name):
            return self.program(**inputs)

    async def _acall(self, **inputs: Any) -> dspy.Prediction:
        with dspy.context(lm=self.lm, adapter=self.adapter), _typed_errors(self.module_name):
            return await self.program.acall(**inputs)

    def _run(
        self, read: Callable[[dspy.Prediction], T], fallback: Fallback[T] | None, **inputs: Any
    ) -> T:
        """`read(prediction)`; a malformed reply is retried, then `fallback(error)` or raised."""
        attempt = 0
        while True:
            try:
                return read(self._call(**self._inputs_for(inputs, attempt)))
            except MalformedResponseError as exc:
                if attempt >= self.parse_retries:
                    return self._give_up(exc, fallback)
                self._retrying(exc, attempt)
            attempt += 1

    async def _arun(
        self, read: Callable[[dspy.Prediction], T], fallback: Fallback[T] | None, **inputs: Any
    ) -> T:
        attempt = 0
        while True:
            try:
                return read(await self._acall(**self._inputs_for(inputs, attempt)))
            except MalformedResponseError as exc:
                if attempt >= self.parse_retries:
                    return self._give_up(exc, fallback)
                self._retrying(exc, attempt)
            attempt += 1

    def _retrying(self, exc: MalformedResponseError, attempt: int) -> None:
        log.warning("llm.reply_malformed", role=self.module_name, attempt=attempt + 1,
                    action="retry", error=exc.message)

    def _give_up(self, exc: MalformedResponseError, fallback: Fallback[T] | None) -> T:
        tries = self.parse_retries + 1
        if fallback is None:
            raise MalformedResponseError(
                f"{self.module_name}: malformed reply after {tries} attempt(s); last: {exc.message}"
            ) from exc
        log.warning("llm.reply_malformed", role=self.module_name, attempt=tries,
                    action="fallback", error=exc.message)
        return fallback(exc)


@contextmanager
def _typed_errors(module: str) -> Iterator[None]:
    """Turns DSPy's parse failures and stray client errors into ragloom's error tree; our own
    errors and programming errors pass through unchanged."""
    from dspy.utils.exceptions import AdapterParseError

    try:
        yield
    except (RagloomError, ValueError, TypeError, KeyError):
        raise
    except AdapterParseError as exc:
        raise MalformedResponseError(
            f"{module}: the model's reply did not follow the expected fields ({exc})"
        ) from exc
    except Exception as exc:
        raise ProviderError(f"{module}: {type(exc).__name__}: {exc}") from exc


class DSPyRouter(DSPyRole):
    """Routes a message to conversation, retrieval, summarization or a refusal."""

    module_name = "router"

    def route(self, question: str, history: Sequence[Turn]) -> RouteDecision:
        return self._run(_decision, _fallback_route, question=question,
                         history=format_history(history))

    async def aroute(self, question: str, history: Sequence[Turn]) -> RouteDecision:
        return await self._arun(_decision, _fallback_route, question=question,
                                history=format_history(history))


def _fallback_route(exc: MalformedResponseError) -> RouteDecision:
    """An unreadable routing reply retrieves: the safe default for a document assistant."""
    return RouteDecision(route="retrieve", reason="router reply unreadable")


def _decision(pred: dspy.Prediction) -> RouteDecision:
    route = str(pred.route).strip().lower()
    if route not in ROUTES:
        route = "retrieve"
    target = str(pred.get("target") or "").strip() or None
    return RouteDecision(route=route, reason=str(pred.get("reason") or ""), target=target)  # type: ignore[arg-type]


def attempt_note(attempt: int) -> str:
    """What the rewriter is told about earlier attempts."""
    if attempt <= 0:
        return ""
    return (
        f"attempt {attempt + 1}: the previous {attempt} search(es) found no relevant passages; "
        "use different terms"
    )


class DSPyRewriter(DSPyRole):
    """Rewrites a conversational question into a standalone search query."""

    module_name = "rewriter"

    def rewrite(self, question: str, history: Sequence[Turn], attempt: int = 0) -> Rewrite:
        return self._run(lambda pred: _rewrite(pred, question),
                         lambda exc: Rewrite(query=question),
                         **self._inputs(question, history, attempt))

    async def arewrite(self, question: str, history: Sequence[Turn], attempt: int = 0) -> Rewrite:
        return await self._arun(lambda pred: _rewrite(pred, question),
                                lambda exc: Rewrite(query=question),
                                **self._inputs(question, history, attempt))

    @staticmethod
    def _inputs(question: str, history: Sequence[Turn], attempt: int) -> dict[str, str]:
        return {
            "question": question,
            "history": format_history(history),
            "attempt_note": attempt_note(attempt),
        }


def _rewrite(pred: dspy.Prediction, question: str) -> Rewrite:
    query = str(pred.query or "").strip() or question
    subs = pred.get("sub_queries") or []
    if isinstance(subs, str):
        subs = [subs]
    clean = tuple(s.strip() for s in subs if isinstance(s, str) and s.strip() and s != query)
    return Rewrite(query=query, sub_queries=clean[:3])


class DSPyGrader(DSPyRole):
    """Grades each retrieved chunk with the relevance judge (the `grade_document` signature)."""

    module_name = "grader"

    def grade(self, question: str, chunks: Sequence[Chunk]) -> list[Grade]:
        return [self._grade_one(question, chunk) for chunk in chunks]

    def _grade_one(self, question: str, chunk: Chunk) -> Grade:
        return self._run(lambda pred: _grade(chunk, pred), lambda exc: _fallback_grade(chunk),
                         question=question, passage=format_passage(chunk))

    async def agrade(self, question: str, chunks: Sequence[Chunk]) -> list[Grade]:
        gate = asyncio.Semaphore(GRADE_CONCURRENCY)

        async def one(chunk: Chunk) -> Grade:
            async with gate:
                return await self._arun(lambda pred: _grade(chunk, pred),
                                        lambda exc: _fallback_grade(chunk),
                                        question=question, passage=format_passage(chunk))

        return list(await asyncio.gather(*(one(c) for c in chunks)))


def _fallback_grade(chunk: Chunk) -> Grade:
    """An unreadable grade keeps the chunk (dropping evidence is worse than keeping noise)."""
    return Grade(chunk_id=chunk.id, relevant=True, score=0.5)


def _grade(chunk: Chunk, pred: dspy.Prediction) -> Grade:
    relevant = bool(pred.relevant)
    score = clamp_score(pred.get("score"), default=float(relevant))
    return Grade(chunk_id=chunk.id, relevant=relevant, score=score)


class DSPyAnswerer(DSPyRole):
    """Writes an answer from the chunks, citing them; citations are parsed into the Draft."""

    module_name = "answerer"

    def answer(self, question: str, chunks: Sequence[Chunk], feedback: str = "") -> Draft:
        return self._run(lambda pred: parse_draft(str(pred.answer or ""), chunks), None,
                         **self._inputs(question, chunks, feedback))

    async def aanswer(self, question: str, chunks: Sequence[Chunk], feedback: str = "") -> Draft:
        return await self._arun(lambda pred: parse_draft(str(pred.answer or ""), chunks), None,
                                **self._inputs(question, chunks, feedback))

    @staticmethod
    def _inputs(question: str, chunks: Sequence[Chunk], feedback: str) -> dict[str, str]:
        # feedback quotes claims of an earlier draft (model text): defused like any quoted data
        return {"question": question, "context": format_context(chunks),
                "feedback": defuse(feedback)}


def parse_draft(text: str, chunks: Sequence[Chunk]) -> Draft:
    """A Draft from an answer citing `[c1]`-style labels (or raw chunk ids) of `chunks`. In the
    Draft's text the markers become footnote numbers `[1]`, `[2]` in citation order (as the
    extractive engine writes them); `claims` carry the chunk ids."""
    labels = chunk_labels(chunks)
    by_id = {c.id: c for c in chunks}
    claims = split_claims(text, labels)
    citations: list[Citation] = []
    for sentence, ids in claims:
        for chunk_id in ids:
            if any(c.chunk_id == chunk_id for c in citations):
                continue
            chunk = by_id[chunk_id]
            citations.append(
                Citation(
                    chunk_id=chunk.id,
                    source=chunk.source,
                    heading_path=chunk.heading_path,
                    quote=best_quote(chunk.text, sentence),
                    score=chunk.score,
                )
            )
    order = [c.chunk_id for c in citations]
    return Draft(
        text=number_citations(text, labels, order),
        citations=tuple(citations),
        claims=tuple((s, tuple(ids)) for s, ids in claims),
    )


def draft_for_check(draft: Draft, chunks: Sequence[Chunk]) -> str:
    """The draft re-labelled against `chunks` (the checker may see a different chunk list)."""
    if not draft.claims:
        return draft.text
    label_of = {cid: label for label, cid in chunk_labels(chunks).items()}
    parts = []
    for sentence, ids in draft.claims:
        marks = "".join(f"[{label_of[i]}]" for i in ids if i in label_of)
        parts.append(f"{defuse(sentence)} {marks}".strip())
    return " ".join(parts)


class DSPyGroundingChecker(DSPyRole):
    """Checks a draft against its chunks with the faithfulness judge (`check_grounding`)."""

    module_name = "grounding"

    def check(self, draft: Draft, chunks: Sequence[Chunk]) -> Verdict:
        return self._run(_verdict, _unchecked, **self._inputs(draft, chunks))

    async def acheck(self, draft: Draft, chunks: Sequence[Chunk]) -> Verdict:
        return await self._arun(_verdict, _unchecked, **self._inputs(draft, chunks))

    @staticmethod
    def _inputs(draft: Draft, chunks: Sequence[Chunk]) -> dict[str, str]:
        return {"context": format_context(chunks), "answer": draft_for_check(draft, chunks)}


def _unchecked(exc: MalformedResponseError) -> Verdict:
    """An unreadable verdict keeps the draft as it is, flagged by a caveat (score 0: unknown)."""
    return Verdict(grounded=True, score=0.0, caveat=UNCHECKED_CAVEAT)


def _verdict(pred: dspy.Prediction) -> Verdict:
    grounded = bool(pred.grounded)
    unsupported = pred.get("unsupported_claims") or []
    if isinstance(unsupported, str):
        unsupported = [unsupported]
    claims = tuple(str(c).strip() for c in unsupported if str(c).strip())
    score = clamp_score(pred.get("score"), default=1.0 if grounded else 0.0)
    return Verdict(grounded=grounded and not claims, unsupported=claims, score=score)


class DSPyMapSummarizer(DSPyRole):
    """Summarizes one chunk or one group of partial summaries (the map step)."""

    module_name = "map_summarizer"

    def summarize(self, text: str, heading: str, length: SummaryLength) -> str:
        return self._run(_text, None, heading=defuse(heading), text=defuse(text), length=length)

    async def asummarize(self, text: str, heading: str, length: SummaryLength) -> str:
        return await self._arun(_text, None, heading=defuse(heading), text=defuse(text),
                                length=length)


def format_sections(sections: Sequence[SectionSummary]) -> str:
    """Section summaries as `## heading` blocks (quoted data: field markers defused)."""
    return "\n\n".join(
        f"## {defuse(s.heading) or '(untitled)'}\n{defuse(s.summary.strip())}" for s in sections
    )


class DSPyReduceSummarizer(DSPyRole):
    """Combines section summaries into an overview plus key points (the reduce step)."""

    module_name = "reduce_summarizer"

    def combine(self, title: str, sections: Sequence[SectionSummary], length: SummaryLength) -> str:
        return self._run(_text, None, title=defuse(title), sections=format_sections(sections),
                         length=length)

    async def acombine(
        self, title: str, sections: Sequence[SectionSummary], length: SummaryLength
    ) -> str:
        return await self._arun(_text, None, title=defuse(title),
                                sections=format_sections(sections), length=length)


def _text(pred: dspy.Prediction) -> str:
    return str(pred.summary or "").strip()


ROLE_CLASSES: dict[str, type[DSPyRole]] = {
    "router": DSPyRouter,
    "rewriter": DSPyRewriter,
    "grader": DSPyGrader,
    "answerer": DSPyAnswerer,
    "grounding": DSPyGroundingChecker,
    "map_summarizer": DSPyMapSummarizer,
    "reduce_summarizer": DSPyReduceSummarizer,
}
