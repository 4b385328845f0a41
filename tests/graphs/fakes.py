"""Small scripted roles and a list-backed store for assistant flow tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ragloom.agents.factory import AssistantRoles
from ragloom.agents.roles import Draft, Grade, Rewrite, RouteDecision, Turn, Verdict
from ragloom.core.documents import Chunk, Citation
from ragloom.core.text import tokenize


class ListStore:
    """Term-overlap search over a list of chunks (flow tests only; real stores have their own)."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self.chunks = list(chunks)
        self.searches: list[str] = []

    def search(self, query, *, k=10, mode="hybrid", alpha=0.5, filters=None, tenant=None):
        self.searches.append(query)
        words = set(tokenize(query))
        scored = []
        for c in self.chunks:
            overlap = len(words & set(tokenize(c.text)))
            if overlap:
                scored.append(Chunk.from_dict({**c.to_dict(), "score": float(overlap)}))
        scored.sort(key=lambda c: (-(c.score or 0), c.id))
        return scored[:k]

    def sources(self, *, tenant=None):
        return {c.source: "h" for c in self.chunks}

    def get_source(self, source, *, tenant=None):
        return [c for c in self.chunks if c.source == source]


@dataclass
class Script:
    """Role behaviour under test, with a record of the calls made."""

    route: str = "retrieve"
    rewrites: list[str] = field(default_factory=lambda: ["query"])
    relevant_after: int = 0  # grading call index from which chunks count as relevant
    grounded_after: int = 0  # grounding call index from which drafts count as grounded
    calls: list[str] = field(default_factory=list)


class ScriptedRoles:
    engine = "scripted"

    def __init__(self, script: Script) -> None:
        self.s = script
        self.grades = 0
        self.checks = 0

    def route(self, question: str, history: Sequence[Turn]) -> RouteDecision:
        self.s.calls.append("route")
        return RouteDecision(route=self.s.route)  # type: ignore[arg-type]

    def rewrite(self, question: str, history: Sequence[Turn], attempt: int = 0) -> Rewrite:
        self.s.calls.append("rewrite")
        return Rewrite(query=self.s.rewrites[min(attempt, len(self.s.rewrites) - 1)])

    def grade(self, question: str, chunks: Sequence[Chunk]) -> list[Grade]:
        self.s.calls.append("grade")
        ok = self.grades >= self.s.relevant_after
        self.grades += 1
        return [Grade(chunk_id=c.id, relevant=ok, score=1.0 if ok else 0.0) for c in chunks]

    def answer(self, question: str, chunks: Sequence[Chunk], feedback: str = "") -> Draft:
        self.s.calls.append("answer")
        first = chunks[0]
        sentence = first.text.split(".")[0] + "."
        return Draft(
            text=f"{sentence} [{first.id}]",
            citations=(Citation(chunk_id=first.id, source=first.source, quote=sentence),),
            claims=((sentence, (first.id,)),),
        )

    def check(self, draft: Draft, chunks: Sequence[Chunk]) -> Verdict:
        self.s.calls.append("check")
        ok = self.checks >= self.s.grounded_after
        self.checks += 1
        return Verdict(grounded=ok, unsupported=() if ok else (draft.claims[0][0],))

    # async twins
    async def aroute(self, *a): return self.route(*a)
    async def arewrite(self, *a): return self.rewrite(*a)
    async def agrade(self, *a): return self.grade(*a)
    async def aanswer(self, *a): return self.answer(*a)
    async def acheck(self, *a): return self.check(*a)


def scripted_roles(script: Script) -> AssistantRoles:
    r = ScriptedRoles(script)
    return AssistantRoles(
        engine="scripted", router=r, rewriter=r, grader=r, answerer=r, grounding=r
    )


def sample_chunks() -> list[Chunk]:
    texts = {
        "a.md": "Octal literals start with 0o. Hex literals start with 0x.",
        "b.md": "Lists are mutable sequences. Tuples are immutable.",
    }
    return [
        Chunk(id=f"c{i}", source=src, text=text, heading_path=("Intro",))
        for i, (src, text) in enumerate(texts.items())
    ]
