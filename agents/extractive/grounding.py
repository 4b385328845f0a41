"""Grounding check for drafts: is each claim backed by the chunk it cites? (extractive engine)"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ragloom.agents.extractive.answerer import NO_ANSWER
from ragloom.agents.roles import Draft, Verdict
from ragloom.core.documents import Chunk
from ragloom.core.text import normalize_space, split_sentences, term_set

_MARKER = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


def _norm(text: str) -> str:
    return normalize_space(text).lower()


class ExtractiveGroundingChecker:
    """A claim is supported when its cited chunks contain it verbatim (extractive quotes always
    do), or contain at least `threshold` of its distinct content terms."""

    engine = "extractive"

    def __init__(self, threshold: float = 0.75) -> None:
        self.threshold = threshold

    def supported(self, claim: str, sources: Sequence[Chunk]) -> bool:
        """Whether `claim` is backed by any of `sources`."""
        if not sources:
            return False
        claim = _MARKER.sub("", claim)
        wanted = _norm(claim).rstrip(":")
        if any(wanted in _norm(c.text) for c in sources):
            return True
        claim_terms = term_set(claim)
        if not claim_terms:
            return True  # nothing checkable ("For example:")
        have: set[str] = set()
        for chunk in sources:
            have |= term_set(chunk.text)
        return len(claim_terms & have) / len(claim_terms) >= self.threshold

    def check(self, draft: Draft, chunks: Sequence[Chunk]) -> Verdict:
        if draft.text.strip() == NO_ANSWER:
            return Verdict(True, (), 1.0)  # claims nothing about the documents
        by_id = {c.id: c for c in chunks}
        claims = list(draft.claims)
        if not claims and draft.text.strip():
            # a draft without claim structure: every sentence may cite any chunk
            claims = [(s.text, tuple(by_id)) for s in split_sentences(draft.text)]
        if not claims:
            return Verdict(True, (), 1.0)
        unsupported = tuple(
            sentence
            for sentence, ids in claims
            if not self.supported(sentence, [by_id[i] for i in ids if i in by_id])
        )
        score = 1.0 - len(unsupported) / len(claims)
        return Verdict(not unsupported, unsupported, round(score, 4))

    async def acheck(self, draft: Draft, chunks: Sequence[Chunk]) -> Verdict:
        return self.check(draft, chunks)
