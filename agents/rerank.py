"""The LLM listwise reranker (a DSPy program on the `openai` engine); `tools.rerank.build_reranker`
picks it when `settings.retrieval.reranker = "llm"`.

`LLMReranker` shows the model the fused candidates as labelled passages (`[c1] (source —
heading)`, quoted as data) and reads back a ranking of labels (signature
`prompts/signatures/rerank.py`, module `reranker`, compilable like the other roles). Labels the
model leaves out keep their fused order after the ranked ones; an unreadable reply (after the
usual one retry) keeps the fused order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import dspy

from ragloom.agents.dspy_modules.roles import DSPyRole
from ragloom.core.documents import Chunk
from ragloom.core.errors import MalformedResponseError
from ragloom.prompts.programs import chunk_labels, format_context
from ragloom.tools.rerank import reorder

_LABEL = re.compile(r"c\d+", re.IGNORECASE)


class LLMReranker(DSPyRole):
    """Listwise reranking by the chat model (one call per query)."""

    module_name = "reranker"
    name = "llm"

    def rerank(self, query: str, chunks: Sequence[Chunk]) -> list[Chunk]:
        if len(chunks) < 2:
            return list(chunks)
        labels = chunk_labels(chunks)

        def read(pred: dspy.Prediction) -> list[Chunk]:
            return _apply_ranking(getattr(pred, "ranking", None), labels, chunks)

        def keep(exc: MalformedResponseError) -> list[Chunk]:
            return list(chunks)

        return self._run(read, keep, question=query, passages=format_context(chunks))

    async def arerank(self, query: str, chunks: Sequence[Chunk]) -> list[Chunk]:
        if len(chunks) < 2:
            return list(chunks)
        labels = chunk_labels(chunks)
        return await self._arun(
            lambda pred: _apply_ranking(getattr(pred, "ranking", None), labels, chunks),
            lambda exc: list(chunks), question=query, passages=format_context(chunks),
        )


def _apply_ranking(ranking: Any, labels: dict[str, str], chunks: Sequence[Chunk]) -> list[Chunk]:
    """Chunks in the model's order (unknown labels ignored, unranked ones after, in order)."""
    items = ranking if isinstance(ranking, list) else _LABEL.findall(str(ranking or ""))
    position = {chunk.id: i for i, chunk in enumerate(chunks)}
    ranked: list[str] = []
    for item in items:
        for token in _LABEL.findall(str(item)):
            chunk_id = labels.get(token.lower())
            if chunk_id and chunk_id not in ranked:
                ranked.append(chunk_id)
    order = ranked + [c.id for c in chunks if c.id not in ranked]
    n = len(order)
    scores = {chunk_id: float(n - i) / n for i, chunk_id in enumerate(order)}
    return reorder(chunks, [scores[c.id] if c.id in position else 0.0 for c in chunks])
