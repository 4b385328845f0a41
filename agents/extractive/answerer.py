"""Extractive answers: the best-supported sentences of the retrieved chunks, with citations.

Sentences are scored against the question by BM25 and idf-weighted term coverage, plus a prior
for the chunk's retrieval rank and, when an embedder is given, cosine similarity. Sentences that
address an AI assistant ("ignore previous instructions") are penalised: documents are data.
A code example stays attached to the sentence that introduces it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ragloom.agents.extractive.grader import retrieval_prior
from ragloom.agents.roles import Draft
from ragloom.core.documents import Chunk, Citation
from ragloom.core.embedders import Embedder
from ragloom.core.text import (
    Sentence,
    bm25_scores,
    coverage,
    idf_table,
    is_meta_instruction,
    split_sentences,
    terms,
    to_markdown,
)

_DANGLING = re.compile(r"^(It|They|This|These|Those|Its|Their|Such|Also|Note that)\b")
NO_ANSWER = "The documents I found do not answer this question."
_EXAMPLE_LEADS = (
    "for example", "for instance", "e.g.", "example:", "here is", "here's", "like this",
)  # fmt: skip


@dataclass
class _Candidate:
    chunk: Chunk
    rank: int
    sentence: Sentence
    terms: list[str]
    score: float = 0.0


def _candidates(chunks: Sequence[Chunk], query: Sequence[str]) -> list[_Candidate]:
    out: list[_Candidate] = []
    for rank, chunk in enumerate(chunks):
        for sentence in split_sentences(chunk.text):
            found = terms(sentence.text)
            out.append(_Candidate(chunk, rank, sentence, found + _inside_names(query, found)))
    return out


def _inside_names(query: Sequence[str], found: Sequence[str]) -> list[str]:
    """Question words hidden inside compound names (`copy`, `file` in `shutil.copyfile`)."""
    names = [t for t in set(found) if len(t) > 5]
    return [q for q in set(query) if len(q) >= 4 and q not in found and any(q in n for n in names)]


def _overlap(a: Sequence[str], b: Sequence[str]) -> float:
    sa, sb = set(a), set(b)
    return len(sa & sb) / max(1, min(len(sa), len(sb)))


def _display(sentence: Sentence) -> str:
    text = to_markdown(sentence.text)
    return text[:-1] if text.endswith("::") else text


class ExtractiveAnswerer:
    """Answers with quoted sentences; never generates text."""

    engine = "extractive"

    def __init__(
        self,
        embedder: Embedder | None = None,
        max_sentences: int = 3,
        min_relative_score: float = 0.5,
        min_coverage: float = 0.2,
        prior_weight: float = 0.12,
    ) -> None:
        """`min_coverage`: idf-weighted share of the question's terms a sentence must contain;
        `prior_weight`: weight of the chunk's retrieval score in a sentence's score."""
        self.prior_weight = prior_weight
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.min_relative_score = min_relative_score
        self.min_coverage = min_coverage

    def _score(self, question: str, query: list[str], cands: list[_Candidate]) -> None:
        docs = [c.terms for c in cands]
        idf = idf_table(docs)
        bm25 = bm25_scores(query, docs, idf, b=0.3)
        bm25 = bm25 / bm25.max() if bm25.size and bm25.max() > 0 else bm25
        prior = retrieval_prior([c.chunk for c in _unique_chunks(cands)])
        prior_by_id = dict(zip((c.chunk.id for c in _unique_chunks(cands)), prior, strict=True))
        semantic = self._semantic(question, cands)
        paragraphs: dict[tuple[str, int], list[str]] = {}
        for cand in cands:
            paragraphs.setdefault((cand.chunk.id, cand.sentence.paragraph), []).extend(cand.terms)
        for i, cand in enumerate(cands):
            cov = coverage(query, cand.terms, idf)
            context = coverage(query, paragraphs[(cand.chunk.id, cand.sentence.paragraph)], idf)
            heading = coverage(query, terms(cand.chunk.heading), idf)
            score = 0.35 * bm25[i] + 0.35 * cov + self.prior_weight * prior_by_id[cand.chunk.id]
            score += 0.12 * context + 0.06 * heading
            if len(cand.sentence.text.split()) < 6:
                score *= 0.7  # too short to answer anything on its own
            if _DANGLING.match(cand.sentence.text):
                score *= 0.85  # leans on a sentence it does not quote
            if semantic is not None:
                score = 0.6 * score + 0.4 * max(0.0, float(semantic[i]))
            if cov < self.min_coverage and (semantic is None or semantic[i] < 0.5):
                score = 0.0  # too little of the question in it to count as evidence
            if is_meta_instruction(cand.sentence.text):
                score *= 0.05
            cand.score = float(score)

    def _semantic(self, question: str, cands: list[_Candidate]) -> np.ndarray | None:
        if self.embedder is None or not cands:
            return None
        vectors = self.embedder.embed_documents([c.sentence.clean for c in cands])
        return np.asarray(vectors @ self.embedder.embed_query(question))

    def _select(self, query: list[str], cands: list[_Candidate], limit: int) -> list[_Candidate]:
        """Greedy: best score, discounted when a sentence adds no new question terms or
        repeats a chosen one."""
        pool = [c for c in cands if c.score > 0]
        if not pool:
            return []
        floor = self.min_relative_score * max(c.score for c in pool)
        pool = [c for c in pool if c.score >= floor]
        qset = set(query)
        covered: set[str] = set()
        chosen: list[_Candidate] = []
        while pool and len(chosen) < limit:
            best = max(pool, key=lambda c: _gain(c, qset, covered))
            pool.remove(best)
            if any(_overlap(best.terms, c.terms) > 0.7 for c in chosen):
                continue  # near-duplicate of a chosen sentence
            chosen.append(best)
            covered |= qset & set(best.terms)
        return chosen

    def _with_examples(self, chosen: list[_Candidate], cands: list[_Candidate]) -> list[_Candidate]:
        """Add the 'For example::' sentence (with its code) right after a chosen sentence."""
        picked = {(c.chunk.id, c.sentence.position) for c in chosen}
        by_place = {(c.chunk.id, c.sentence.position): c for c in cands}
        out: list[_Candidate] = []
        examples = 0
        for cand in chosen:
            out.append(cand)
            nxt = by_place.get((cand.chunk.id, cand.sentence.position + 1))
            if (
                cand.sentence.code is None
                and nxt is not None
                and nxt.sentence.code
                and examples < 2
                and (nxt.chunk.id, nxt.sentence.position) not in picked
                and nxt.sentence.paragraph == cand.sentence.paragraph
                and nxt.sentence.text.lower().startswith(_EXAMPLE_LEADS)
            ):
                out.append(nxt)
                picked.add((nxt.chunk.id, nxt.sentence.position))
                examples += 1
        return out

    def answer(self, question: str, chunks: Sequence[Chunk], feedback: str = "") -> Draft:
        query = terms(question)
        cands = _candidates(chunks, query)
        if not cands or not query:
            return Draft(NO_ANSWER)
        self._score(question, query, cands)
        limit = max(1, self.max_sentences - 1) if feedback else self.max_sentences
        chosen = _with_first_passage(self._select(query, cands, limit), cands, limit)
        if not chosen:
            return Draft(NO_ANSWER)
        # answer order: by chunk rank, then as written in the chunk
        chosen.sort(key=lambda c: (c.rank, c.sentence.position))
        chosen = self._with_examples(chosen, cands)
        return self._draft(chosen)

    def _draft(self, chosen: list[_Candidate]) -> Draft:
        parts: list[str] = []
        citations: list[Citation] = []
        claims: list[tuple[str, tuple[str, ...]]] = []
        for n, cand in enumerate(chosen, start=1):
            sentence = cand.sentence
            citations.append(
                Citation(
                    chunk_id=cand.chunk.id,
                    source=cand.chunk.source,
                    heading_path=cand.chunk.heading_path,
                    quote=sentence.text,
                    score=round(cand.score, 4),
                )
            )
            claims.append((sentence.text, (cand.chunk.id,)))
            piece = f"{_display(sentence)} [{n}]"
            if sentence.code:
                code = "\n".join(f"    {line}" for line in sentence.code.splitlines())
                piece = f"{piece}\n\n{code}\n"
            parts.append(piece)
        text = ""
        for piece in parts:
            sep = "" if not text else ("\n" if text.endswith("\n") else " ")
            text = f"{text}{sep}{piece}"
        return Draft(text.strip(), tuple(citations), tuple(claims))

    async def aanswer(self, question: str, chunks: Sequence[Chunk], feedback: str = "") -> Draft:
        return self.answer(question, chunks, feedback)


def _with_first_passage(
    chosen: list[_Candidate], cands: list[_Candidate], limit: int
) -> list[_Candidate]:
    """Keep the first passage in the answer: when no chosen sentence comes from it, its best
    sentence (one with question terms, not an instruction) takes the last pick's place. The
    first passage is the likeliest source; term overlap alone often prefers a neighbour that
    repeats the question's words (measured on two corpora: benchmarks/RESULTS.md)."""
    if not chosen:
        return chosen
    first = min(c.rank for c in cands)
    if any(c.rank == first for c in chosen):
        return chosen
    own = [c for c in cands
           if c.rank == first and c.score > 0 and not is_meta_instruction(c.sentence.text)]
    if not own:
        return chosen
    return [max(own, key=lambda c: c.score), *chosen][:limit]


def _gain(cand: _Candidate, query: set[str], covered: set[str]) -> float:
    """A sentence's score, discounted when its question terms are already covered."""
    mine = query & set(cand.terms)
    fresh = len(mine - covered) / len(mine) if mine else 0.0
    return cand.score * (0.6 + 0.4 * fresh)


def _unique_chunks(cands: list[_Candidate]) -> list[_Candidate]:
    seen: dict[str, _Candidate] = {}
    for cand in cands:
        seen.setdefault(cand.chunk.id, cand)
    return list(seen.values())
