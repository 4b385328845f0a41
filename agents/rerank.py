"""The LLM listwise reranker (a DSPy program on the `openai` engine) and `build_reranker`, which
picks the reranker that `settings.retrieval.reranker` names.

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
from ragloom.core.errors import ConfigError, MalformedResponseError
from ragloom.core.settings import Settings
from ragloom.prompts.programs import chunk_labels, format_context
from ragloom.tools.rerank import (
    CrossEncoderReranker,
    NoReranker,
    Reranker,
    SemanticReranker,
    WeaviateReranker,
    reorder,
)

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


def build_reranker(
    settings: Settings, *, embedder: Any = None, store: Any = None, lm: Any = None,
    program: Any = None,
) -> Reranker:
    """The reranker `settings.retrieval.reranker` names; `auto` picks, in order: a configured
    cross-encoder, the Weaviate collection's reranker module, else none. The LLM reranker is
    asked for by name (`llm`): it adds one sequential LLM round trip before grading (which
    already judges each passage on the openai engine); the offline semantic reranker did not
    measurably help on python-docs (`semantic`)."""
    choice = settings.retrieval.reranker
    if choice == "none":
        return NoReranker()
    if choice == "cross-encoder" or (choice == "auto" and settings.retrieval.cross_encoder_model):
        if not settings.retrieval.cross_encoder_model:
            raise ConfigError("the cross-encoder reranker needs a model",
                              setting="retrieval.cross_encoder_model",
                              fix="name a local CrossEncoder model, or pick another reranker")
        return CrossEncoderReranker(settings.retrieval.cross_encoder_model)
    has_module = store is not None and bool(getattr(store, "has_reranker", lambda: False)())
    if choice == "weaviate" or (choice == "auto" and has_module):
        if store is None or not hasattr(store, "rerank"):
            raise ConfigError("the weaviate reranker needs the Weaviate store",
                              setting="retrieval.reranker", fix="set store.kind = 'weaviate'")
        return WeaviateReranker(store, tenant=settings.store.tenant)
    if choice == "llm":
        if lm is None:
            raise ConfigError("the llm reranker needs the gateway's LM",
                              setting="retrieval.reranker", fix="pass lm=gateway.dspy_lm()")
        return LLMReranker(lm, program)
    if choice == "semantic":  # not picked by `auto`: +0.001 nDCG@10 on the tune half for
        if embedder is None:  # 0.5 s per query (benchmarks/RESULTS.md, issue 12 section)
            raise ConfigError("the semantic reranker needs an embedder",
                              setting="retrieval.reranker", fix="pass the store's embedder")
        return SemanticReranker(embedder)
    return NoReranker()
