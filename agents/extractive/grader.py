"""Relevance grading from retrieval scores and term overlap (extractive engine)."""

from __future__ import annotations

from collections.abc import Sequence

from ragloom.agents.roles import Grade
from ragloom.core.documents import Chunk
from ragloom.core.text import coverage, idf_table, terms


def retrieval_prior(chunks: Sequence[Chunk]) -> list[float]:
    """Retrieval scores scaled to 0..1 by the best one; rank-based when scores are missing."""
    scores = [c.score for c in chunks]
    if scores and all(s is not None for s in scores):
        best = max(float(s) for s in scores if s is not None)
        if best > 0:
            return [max(0.0, float(s or 0.0)) / best for s in scores]
    return [1.0 / (1.0 + 0.25 * rank) for rank in range(len(chunks))]


class ExtractiveGrader:
    """A chunk is relevant when it covers enough of the question's terms.

    `threshold` is the idf-weighted share of question terms a chunk must contain; a chunk the
    retriever ranked near the top needs less (its score already says something).
    """

    engine = "extractive"

    def __init__(self, threshold: float = 0.34, score_weight: float = 0.3) -> None:
        self.threshold = threshold
        self.score_weight = score_weight

    def grade(self, question: str, chunks: Sequence[Chunk]) -> list[Grade]:
        query = terms(question)
        chunk_terms = [terms(f"{c.title} {c.heading} {c.text}") for c in chunks]
        idf = {t: 1.0 + w for t, w in idf_table(chunk_terms).items()}
        prior = retrieval_prior(chunks)
        grades = []
        for chunk, bag, rank_score in zip(chunks, chunk_terms, prior, strict=True):
            overlap = coverage(query, bag, idf) if query else rank_score
            score = (1 - self.score_weight) * overlap + self.score_weight * rank_score
            relevant = overlap >= self.threshold or (overlap > 0 and rank_score >= 0.9)
            grades.append(Grade(chunk.id, relevant, round(score, 4)))
        return grades

    async def agrade(self, question: str, chunks: Sequence[Chunk]) -> list[Grade]:
        return self.grade(question, chunks)
