"""Extractive summaries: centroid + TextRank sentence scoring with a position prior and MMR.

Sentences are scored by similarity to the text's centroid and by TextRank centrality over a
sentence-similarity graph (tf-idf vectors, or an injected embedder's), plus a prior for early
and paragraph-leading sentences. Selection is maximal marginal relevance, so a summary does not
say the same thing twice; the chosen sentences are printed in document order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ragloom.agents.roles import SectionSummary, SummaryLength
from ragloom.core.embedders import Embedder, normalize
from ragloom.core.text import (
    Sentence,
    is_meta_instruction,
    split_sentences,
    terms,
    tfidf_matrix,
)

NEAR_DUPLICATE = 0.8  # cosine similarity above which two sentences say the same thing
_WORDY = re.compile(r"[A-Za-z]{2}")
_DANGLING = re.compile(r"^(It|They|This|These|Those|He|She|Its|Their|Such|Also|However)\b")


@dataclass(frozen=True)
class Budget:
    """How much a summary may say: at most `sentences` sentences and about `words` words."""

    sentences: int
    words: int


MAP_BUDGETS: dict[str, Budget] = {
    "short": Budget(2, 55),
    "medium": Budget(4, 110),
    "long": Budget(7, 200),
}
OVERVIEW_BUDGETS: dict[str, Budget] = {
    "short": Budget(2, 60),
    "medium": Budget(4, 120),
    "long": Budget(6, 200),
}
POINT_BUDGETS: dict[str, Budget] = {
    "short": Budget(1, 40),
    "medium": Budget(3, 90),
    "long": Budget(5, 160),
}


def _textrank(sim: np.ndarray, damping: float = 0.85, iterations: int = 50) -> np.ndarray:
    n = sim.shape[0]
    weights = sim.copy()
    np.fill_diagonal(weights, 0.0)
    weights[weights < 0] = 0.0
    sums = weights.sum(axis=1, keepdims=True)
    transition = np.divide(weights, sums, out=np.full_like(weights, 1.0 / n), where=sums > 0)
    rank = np.full(n, 1.0 / n)
    for _ in range(iterations):
        updated = (1 - damping) / n + damping * transition.T @ rank
        if np.abs(updated - rank).sum() < 1e-6:
            rank = updated
            break
        rank = updated
    return rank / rank.max() if rank.max() > 0 else rank


def _scale(values: np.ndarray) -> np.ndarray:
    top = values.max() if values.size else 0.0
    return values / top if top > 0 else values


class SentenceRanker:
    """Scores and selects sentences of one text."""

    def __init__(self, embedder: Embedder | None = None, diversity: float = 0.2) -> None:
        self.embedder = embedder
        self.diversity = diversity

    def vectors(self, sentences: Sequence[Sentence]) -> np.ndarray:
        """Unit sentence vectors: the embedder's when given, else tf-idf over the text."""
        if self.embedder is not None:
            return normalize(self.embedder.embed_documents([s.clean for s in sentences]))
        return tfidf_matrix([terms(s.text) for s in sentences])

    def scores(
        self, sentences: Sequence[Sentence], heading: str, vectors: np.ndarray
    ) -> np.ndarray:
        """Salience of each sentence, 0..~1."""
        n = len(sentences)
        centroid = normalize(vectors.mean(axis=0, keepdims=True))[0]
        central = _scale(np.clip(vectors @ centroid, 0, None))
        rank = _textrank(vectors @ vectors.T) if n > 2 else np.ones(n)
        # position prior (lead sentences and paragraph openers carry the gist): 1/(1+i)
        position = np.array(
            [1.0 / (1.0 + s.position) + (0.35 if s.first_in_paragraph else 0.0)
             for s in sentences]
        )  # fmt: skip
        position = _scale(position)
        head = set(terms(heading))
        topical = np.array(
            [len(head & set(terms(s.text))) / len(head) if head else 0.0 for s in sentences]
        )
        score = 0.3 * central + 0.15 * rank + 0.45 * position + 0.1 * topical
        for i, s in enumerate(sentences):
            words = len(s.text.split())
            if words < 4 or s.text.rstrip().endswith(":"):
                score[i] *= 0.5  # fragments and "For example:" lead-ins say little alone
            if _DANGLING.match(s.text):
                score[i] *= 0.8  # "They are ..." needs the sentence before it
            if words > 60:
                score[i] *= 0.7
            if is_meta_instruction(s.text):
                score[i] *= 0.05
        return score

    def _mmr(self, i: int, score: np.ndarray, sim: np.ndarray, chosen: list[int]) -> float:
        redundancy = max((float(sim[i, j]) for j in chosen), default=0.0)
        return float((1 - self.diversity) * score[i] - self.diversity * redundancy)

    def select(self, text: str, heading: str, budget: Budget) -> list[Sentence]:
        """The MMR choice of sentences within `budget`, in document order."""
        sentences = [s for s in split_sentences(text) if _WORDY.search(s.clean)]
        if len(sentences) <= 1:
            return sentences[: budget.sentences]
        vectors = self.vectors(sentences)
        score = self.scores(sentences, heading, vectors)
        sim = vectors @ vectors.T
        chosen: list[int] = []
        words = 0
        candidates = set(range(len(sentences)))
        while candidates and len(chosen) < budget.sentences:
            best = max(candidates, key=lambda i: self._mmr(i, score, sim, chosen))
            candidates.discard(best)
            length = len(sentences[best].text.split())
            if chosen and words + length > budget.words:
                continue
            if any(sim[best, j] > NEAR_DUPLICATE for j in chosen):
                continue  # says what a chosen sentence already says
            chosen.append(best)
            words += length
        return [sentences[i] for i in sorted(chosen)]


class ExtractiveMapSummarizer:
    """Summarizes one chunk (or one partial summary) by sentence selection."""

    engine = "extractive"

    def __init__(self, embedder: Embedder | None = None, diversity: float = 0.2) -> None:
        self.ranker = SentenceRanker(embedder, diversity)

    def summarize(self, text: str, heading: str, length: SummaryLength) -> str:
        chosen = self.ranker.select(text, heading, MAP_BUDGETS[length])
        # one sentence per paragraph, so a later step splits them exactly as chosen
        return "\n\n".join(s.clean for s in chosen)

    async def asummarize(self, text: str, heading: str, length: SummaryLength) -> str:
        return self.summarize(text, heading, length)


def merge_sections(sections: Sequence[SectionSummary]) -> list[SectionSummary]:
    """Adjacent sections with the same heading become one (chunks of one section)."""
    merged: list[SectionSummary] = []
    for section in sections:
        if not section.summary.strip():
            continue
        if merged and merged[-1].heading == section.heading:
            merged[-1] = SectionSummary(
                section.heading, f"{merged[-1].summary}\n\n{section.summary}"
            )
        else:
            merged.append(section)
    return merged


class ExtractiveReduceSummarizer:
    """Builds the structured summary: an overview paragraph, then key points per section."""

    engine = "extractive"

    def __init__(self, embedder: Embedder | None = None, diversity: float = 0.2) -> None:
        self.ranker = SentenceRanker(embedder, diversity)

    def combine(self, title: str, sections: Sequence[SectionSummary], length: SummaryLength) -> str:
        merged = merge_sections(sections)
        body: list[str] = []
        leads: list[str] = []
        for section in merged:
            points = self.ranker.select(section.summary, section.heading, POINT_BUDGETS[length])
            if not points:
                continue
            leads.append(points[0].clean)
            body += ["", f"### {section.heading or title or 'Document'}", ""]
            body += [f"- {p.clean}" for p in points]
        # the overview picks among the sections' lead points, so it spans the whole document
        pool = "\n\n".join(leads) if len(leads) > 1 else "\n\n".join(s.summary for s in merged)
        overview = self.ranker.select(pool, title, OVERVIEW_BUDGETS[length])
        lines = ["## Overview", "", " ".join(s.clean for s in overview) or "(nothing to say)"]
        return "\n".join(lines + body) + "\n"

    async def acombine(
        self, title: str, sections: Sequence[SectionSummary], length: SummaryLength
    ) -> str:
        return self.combine(title, sections, length)
