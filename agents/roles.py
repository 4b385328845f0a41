"""The agent roles the graphs call, as Protocols, and the data they exchange.

Each role has two implementations behind the same interface: a DSPy module over a signature in
`prompts/signatures` (the `openai` engine) and the extractive engine (no model). Every role has a
sync method and an async twin (`a` prefix, as in LangChain) so graphs run under invoke and ainvoke.
Chunks travel as `ragloom.core.documents.Chunk`; results are small dataclasses that convert to
dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ragloom.core.documents import Chunk, Citation

Route = Literal["conversation", "retrieve", "summarize", "decline"]
SummaryLength = Literal["short", "medium", "long"]


@dataclass(frozen=True)
class Turn:
    """One message of a thread's history."""

    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class RouteDecision:
    route: Route
    reason: str = ""
    target: str | None = None  # for `summarize`: the document named by the user


@dataclass(frozen=True)
class Rewrite:
    query: str
    sub_queries: tuple[str, ...] = ()


@dataclass(frozen=True)
class Grade:
    chunk_id: str
    relevant: bool
    score: float


@dataclass(frozen=True)
class Draft:
    """An answer with the chunks it cites; each claim is a sentence with its citations."""

    text: str
    citations: tuple[Citation, ...] = ()
    claims: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (sentence, cited chunk ids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "claims": [[s, list(ids)] for s, ids in self.claims],
        }


@dataclass(frozen=True)
class Verdict:
    grounded: bool
    unsupported: tuple[str, ...] = ()  # claims not supported by their cited chunks
    score: float = 1.0
    caveat: str | None = None  # set when the check could not be made (the draft is kept)


@dataclass(frozen=True)
class SectionSummary:
    heading: str
    summary: str


class Router(Protocol):
    engine: str

    def route(self, question: str, history: Sequence[Turn]) -> RouteDecision: ...
    async def aroute(self, question: str, history: Sequence[Turn]) -> RouteDecision: ...


class QueryRewriter(Protocol):
    engine: str

    def rewrite(self, question: str, history: Sequence[Turn], attempt: int = 0) -> Rewrite: ...
    async def arewrite(
        self, question: str, history: Sequence[Turn], attempt: int = 0
    ) -> Rewrite: ...


class Grader(Protocol):
    engine: str

    def grade(self, question: str, chunks: Sequence[Chunk]) -> list[Grade]: ...
    async def agrade(self, question: str, chunks: Sequence[Chunk]) -> list[Grade]: ...


class Answerer(Protocol):
    engine: str

    def answer(self, question: str, chunks: Sequence[Chunk], feedback: str = "") -> Draft: ...
    async def aanswer(
        self, question: str, chunks: Sequence[Chunk], feedback: str = ""
    ) -> Draft: ...


class GroundingChecker(Protocol):
    engine: str

    def check(self, draft: Draft, chunks: Sequence[Chunk]) -> Verdict: ...
    async def acheck(self, draft: Draft, chunks: Sequence[Chunk]) -> Verdict: ...


class MapSummarizer(Protocol):
    """Summarizes one chunk (or one partial summary) of a document."""

    engine: str

    def summarize(self, text: str, heading: str, length: SummaryLength) -> str: ...
    async def asummarize(self, text: str, heading: str, length: SummaryLength) -> str: ...


class ReduceSummarizer(Protocol):
    """Combines per-section summaries into an overview plus key points per section."""

    engine: str

    def combine(
        self, title: str, sections: Sequence[SectionSummary], length: SummaryLength
    ) -> str: ...
    async def acombine(
        self, title: str, sections: Sequence[SectionSummary], length: SummaryLength
    ) -> str: ...
