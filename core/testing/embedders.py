"""A deterministic hashing embedder: instant, offline, stable across processes."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from ragloom.core.embedders import normalize

_WORD = re.compile(r"[^\W_]+")


class HashingEmbedder:
    """Bag of words (and word bigrams) hashed into `dimensions` buckets, signed, normalised.

    Texts sharing words get similar vectors, so vector search behaves sensibly in tests.
    """

    def __init__(self, dimensions: int = 256) -> None:
        self.dimensions = dimensions
        self.name = f"hashing-{dimensions}"

    def _bucket(self, token: str) -> tuple[int, float]:
        digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.dimensions, 1.0 if (value >> 63) & 1 else -1.0

    def _embed(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimensions, dtype=np.float32)
        words = [w.lower() for w in _WORD.findall(text)]
        for token in words + [f"{a} {b}" for a, b in pairwise(words)]:
            index, sign = self._bucket(token)
            vector[index] += sign
        return vector

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return normalize(np.stack([self._embed(t) for t in texts]))

    def embed_query(self, text: str) -> np.ndarray:
        return normalize(self._embed(text)[None, :])[0]
