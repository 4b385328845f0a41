"""`OpenAIEmbedder`: the Embedder protocol over any OpenAI-compatible `/v1/embeddings`.

Calls go through `LLMGateway.embed`, so they share the retry policy, typed errors and usage tracker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ragloom.core.embedders import normalize
from ragloom.core.errors import MalformedResponseError

if TYPE_CHECKING:
    from ragloom.core.llm import LLMGateway


class OpenAIEmbedder:
    """Embeds in batches of `batch_size` through the gateway; rows are L2-normalised float32.

    `dimensions` is sent to the endpoint (text-embedding-3-* can shorten vectors) unless
    `send_dimensions=False` (servers that reject the parameter); replies of another width fail.
    """

    def __init__(
        self,
        gateway: LLMGateway,
        *,
        model: str = "text-embedding-3-small",
        dimensions: int = 1536,
        batch_size: int = 64,
        send_dimensions: bool = True,
    ) -> None:
        self.gateway = gateway
        self.model = model
        self.dimensions = dimensions
        self.batch_size = max(1, batch_size)
        self.send_dimensions = send_dimensions
        self.name = f"openai:{model}:{dimensions}"

    def _batch(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.gateway.embed(
            list(texts), model=self.model,
            dimensions=self.dimensions if self.send_dimensions else None,
        )
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] != self.dimensions:
            raise MalformedResponseError(
                f"embeddings from {self.model} have shape {array.shape}, "
                f"expected (n, {self.dimensions}); set embedder.dimensions to match the model"
            )
        return array

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dimensions) float32, rows L2-normalised."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        parts = [self._batch(texts[i:i + self.batch_size])
                 for i in range(0, len(texts), self.batch_size)]
        return normalize(np.concatenate(parts))

    def embed_query(self, text: str) -> np.ndarray:
        """(dimensions,) float32, L2-normalised."""
        return self.embed_documents([text])[0]
