"""Rerankers: a second look at the fused candidates, best first.

The assistant retrieves `rerank_depth` fused chunks, then calls `reranker.rerank(query, chunks)`
and keeps the first `k`. Every implementation keeps the chunks it is given (it reorders, and sets
`score` to its own score) and never raises for bad model output: on failure it returns the input
order.

- `NoReranker`: the fused order.
- `SemanticReranker` (offline): query-to-sentence max similarity with the store's embedder,
  blended with the fused score; measured on python-docs in benchmarks/retrieval_bench.py.
- `CrossEncoderReranker`: a sentence-transformers `CrossEncoder` (configured model only).
- `WeaviateReranker`: the collection's own reranker module (`reranker-*`), through the store.
- The LLM listwise reranker is a DSPy program (`ragloom.agents.rerank.LLMReranker`): it lives
  with the other prompt programs, above this layer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import structlog

from ragloom.core.documents import Chunk
from ragloom.core.errors import ConfigError
from ragloom.core.text import split_sentences
from ragloom.tools.stores.base import chunk_context, min_max

if TYPE_CHECKING:
    from ragloom.core.embedders import Embedder
    from ragloom.core.settings import Settings

log = structlog.get_logger(__name__)


@runtime_checkable
class Reranker(Protocol):
    """Reorders retrieved chunks for a query: same chunks, best first, `score` set."""

    name: str

    def rerank(self, query: str, chunks: Sequence[Chunk]) -> list[Chunk]:
        """The chunks, best first."""
        ...


class NoReranker:
    """Keeps the retriever's order."""

    name = "none"

    def rerank(self, query: str, chunks: Sequence[Chunk]) -> list[Chunk]:
        return list(chunks)


def reorder(chunks: Sequence[Chunk], scores: Sequence[float]) -> list[Chunk]:
    """Copies of `chunks` sorted by `scores` (stable: ties keep the input order), each with
    `score` set to its new score."""
    order = sorted(range(len(chunks)), key=lambda i: -scores[i])
    return [replace(chunks[i], score=float(scores[i])) for i in order]


class SemanticReranker:
    """Offline reranking with the store's embedder: a chunk's best sentence (or its context
    line) against the query, blended with its fused retrieval score.

    score = (1 - weight) * minmax(fused score) + weight * minmax(max cosine(query, sentence)).
    A chunk is often retrieved for one sentence that answers the question next to many that do
    not; the whole-chunk vector dilutes that one, the max does not.
    """

    name = "semantic"

    def __init__(self, embedder: Embedder, *, weight: float = 0.5, max_sentences: int = 24):
        self.embedder = embedder
        self.weight = weight
        self.max_sentences = max_sentences

    def rerank(self, query: str, chunks: Sequence[Chunk]) -> list[Chunk]:
        if len(chunks) < 2:
            return list(chunks)
        texts: list[str] = []
        owner: list[int] = []
        for index, chunk in enumerate(chunks):
            context = chunk_context(chunk)
            pieces = [s.clean for s in split_sentences(chunk.text)][: self.max_sentences]
            for piece in pieces or [chunk.text]:
                texts.append(f"{context}: {piece}" if context else piece)
                owner.append(index)
        vectors = np.asarray(self.embedder.embed_documents(texts))
        similarity = vectors @ np.asarray(self.embedder.embed_query(query))
        best = np.full(len(chunks), -1.0)
        for row, index in enumerate(owner):
            best[index] = max(best[index], float(similarity[row]))
        fused = min_max([float(c.score or 0.0) for c in chunks])
        semantic = min_max(best.tolist())
        scores = [(1 - self.weight) * f + self.weight * s
                  for f, s in zip(fused, semantic, strict=True)]
        return reorder(chunks, scores)


_CROSS_ENCODERS: dict[str, Any] = {}
_CE_LOCK = threading.Lock()


class CrossEncoderReranker:
    """A sentence-transformers `CrossEncoder` scoring (query, context + text) pairs.

    Only used when a model is configured (`retrieval.cross_encoder_model`, a local path or a
    name in the local Hugging Face cache): nothing is downloaded by default.
    """

    name = "cross-encoder"

    def __init__(self, model: str, *, batch_size: int = 16, model_object: Any = None) -> None:
        self.model_name = model
        self.batch_size = batch_size
        self._model = model_object

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        with _CE_LOCK:
            if self.model_name not in _CROSS_ENCODERS:
                try:
                    from sentence_transformers import CrossEncoder
                except ImportError as exc:
                    raise ConfigError(
                        "the cross-encoder reranker needs sentence-transformers",
                        setting="retrieval.reranker", fix="pip install 'ragloom[local]'",
                    ) from exc
                log.info("reranker.load", model=self.model_name)
                _CROSS_ENCODERS[self.model_name] = CrossEncoder(self.model_name, device="cpu")
            self._model = _CROSS_ENCODERS[self.model_name]
        return self._model

    def rerank(self, query: str, chunks: Sequence[Chunk]) -> list[Chunk]:
        if len(chunks) < 2:
            return list(chunks)
        pairs = [(query, _passage(c)) for c in chunks]
        scores = self._load().predict(pairs, batch_size=self.batch_size, show_progress_bar=False)
        return reorder(chunks, [float(s) for s in np.asarray(scores).reshape(-1)])


class WeaviateReranker:
    """The collection's reranker module (e.g. `reranker-transformers`): Weaviate rescores the
    chunks by id with `rerank=Rerank(prop="text", query=...)`. See `WeaviateStore.rerank`."""

    name = "weaviate"

    def __init__(self, store: Any, *, tenant: str | None = None) -> None:
        self.store = store
        self.tenant = tenant

    def rerank(self, query: str, chunks: Sequence[Chunk]) -> list[Chunk]:
        if len(chunks) < 2:
            return list(chunks)
        try:
            scores = self.store.rerank(query, [c.id for c in chunks], tenant=self.tenant)
        except Exception as exc:  # a reranker is an improvement, never a failure
            log.warning("reranker.failed", reranker=self.name, error=str(exc))
            return list(chunks)
        return reorder(chunks, [scores.get(c.id, float("-inf")) for c in chunks])


def _passage(chunk: Chunk) -> str:
    context = chunk_context(chunk)
    return f"{context}\n{chunk.text}" if context else chunk.text


def build_reranker(
    settings: Settings, *, embedder: Any = None, store: Any = None,
    llm: Callable[[], Reranker] | None = None,
) -> Reranker:
    """The reranker `settings.retrieval.reranker` names; `auto` picks, in order: a configured
    cross-encoder, the Weaviate collection's reranker module, else none. The LLM reranker is
    asked for by name (`llm`): it adds one sequential LLM round trip before grading (which
    already judges each passage on the openai engine); the offline semantic reranker did not
    measurably help on python-docs (`semantic`). `llm` makes the LLM reranker
    (`agents.rerank.LLMReranker`, on the gateway's DSPy LM) only when it is picked, so the offline
    path never imports DSPy."""
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
        if llm is None:
            raise ConfigError("the llm reranker needs the gateway's LM",
                              setting="retrieval.reranker", fix="use engine = 'openai'")
        return llm()
    if choice == "semantic":  # not picked by `auto`: no nDCG@10 gain on the tune half, for
        if embedder is None:  # 0.3-0.5 s per query (benchmarks/RESULTS.md, issue 12 sections)
            raise ConfigError("the semantic reranker needs an embedder",
                              setting="retrieval.reranker", fix="pass the store's embedder")
        return SemanticReranker(embedder)
    return NoReranker()
