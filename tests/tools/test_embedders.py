"""Embedder factory, and (slow) the real local MiniLM model offline."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ragloom.core.embedders import LocalEmbedder, OnnxEmbedder, build_embedder, onnx_available
from ragloom.core.settings import load_settings
from ragloom.core.testing.embedders import HashingEmbedder
from ragloom.tools.stores import build_store
from ragloom.tools.stores.embedded import EmbeddedStore


def test_build_embedder_kinds() -> None:
    hashing = build_embedder(load_settings(embedder={"kind": "hashing", "dimensions": 32}))
    assert isinstance(hashing, HashingEmbedder) and hashing.dimensions == 32
    torch_backend = {"kind": "local", "batch_size": 8, "backend": "torch"}
    local = build_embedder(load_settings(embedder=torch_backend))
    assert isinstance(local, LocalEmbedder)
    assert (local.name, local.dimensions, local.batch_size) == ("all-MiniLM-L6-v2", 384, 8)
    onnx = build_embedder(load_settings(embedder={"kind": "local", "backend": "onnx",
                                                  "cache_dir": "/tmp/x", "quantize": False}))
    assert isinstance(onnx, OnnxEmbedder)  # built lazily: nothing exported until first use
    assert (onnx.name, onnx.dimensions) == (local.name, local.dimensions)  # same stores
    assert onnx.model_path.parent == Path("/tmp/x") and "fp32" in onnx.model_path.name
    auto = build_embedder(load_settings(embedder={"kind": "local"}))
    assert isinstance(auto, OnnxEmbedder if onnx_available() else LocalEmbedder)


def test_build_embedder_openai_goes_through_the_gateway() -> None:
    from ragloom.core.openai_embedder import OpenAIEmbedder

    settings = load_settings(
        llm={"base_url": "http://127.0.0.1:9/v1"},
        embedder={"kind": "openai", "model": "text-embedding-3-small", "dimensions": 256},
    )
    embedder = build_embedder(settings)
    assert isinstance(embedder, OpenAIEmbedder)
    assert (embedder.dimensions, embedder.model) == (256, "text-embedding-3-small")
    assert embedder.name == "openai:text-embedding-3-small:256"


def test_build_store_embedded(tmp_path: Path) -> None:
    settings = load_settings(embedder={"kind": "hashing"}, store={"path": tmp_path / "x.db"})
    store = build_store(settings)
    assert isinstance(store, EmbeddedStore) and store.path == tmp_path / "x.db"
    store.close()


@pytest.mark.slow
def test_local_embedder_loads_offline_and_ranks_by_meaning() -> None:
    embedder = LocalEmbedder(batch_size=4)
    docs = embedder.embed_documents([
        "The cat sat on the warm windowsill in the sun.",
        "Quarterly tax filings are due at the end of the month.",
    ])
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert docs.shape == (2, 384) and docs.dtype == np.float32
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    query = embedder.embed_query("a kitten resting by the window")
    assert query.shape == (384,)
    related, unrelated = docs @ query
    assert related > unrelated + 0.2


@pytest.mark.slow
def test_onnx_int8_backend_matches_torch(tmp_path: Path) -> None:
    """Exported once into the cache (torch, offline), then onnxruntime only: vectors within
    quantization error of torch's, and the cached file is reused."""
    pytest.importorskip("onnxruntime")
    texts = [
        "The cat sat on the warm windowsill in the sun.",
        "shutil.copyfile(src, dst) copies the contents of the file named src to dst. " * 12,
        "tax",
    ]
    onnx = OnnxEmbedder(cache_dir=tmp_path)
    got = onnx.embed_documents(texts)
    assert onnx.model_path.is_file()
    want = LocalEmbedder().embed_documents(texts)
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.min(np.sum(got * want, axis=1)) > 0.97
    # threads texts at once, each run alone: the same vectors as one at a time, whatever the
    # neighbours (dynamic int8 scales per run, so batching would nudge them)
    mixed = [*texts, "a fourth, short", texts[1][:300]]
    one_at_a_time = OnnxEmbedder(cache_dir=tmp_path, threads=1).embed_documents(mixed)
    concurrent = OnnxEmbedder(cache_dir=tmp_path, threads=3).embed_documents(mixed)
    assert np.max(np.abs(concurrent - one_at_a_time)) <= 1e-6
    assert np.max(np.abs(concurrent[:3] - got)) <= 1e-6
    alone = OnnxEmbedder(cache_dir=tmp_path, threads=3).embed_documents([mixed[3]])
    assert np.max(np.abs(alone[0] - concurrent[3])) <= 1e-6
    stamp = onnx.model_path.stat().st_mtime_ns
    again = OnnxEmbedder(cache_dir=tmp_path).embed_query(texts[0])
    assert onnx.model_path.stat().st_mtime_ns == stamp  # not exported twice
    assert float(again @ got[0]) > 0.999


def test_long_texts_are_cut_into_windows_that_fit_the_model() -> None:
    pytest.importorskip("tokenizers")
    from ragloom.core.embedders import local_tokenizer, text_windows

    short = "A short text fits in one window."
    assert text_windows(short) == [(short, len(local_tokenizer(None).encode(
        short, add_special_tokens=False).ids))]
    text = " ".join(f"word{n} unbelievably" for n in range(400))
    windows = text_windows(text, max_tokens=64)
    assert len(windows) > 1
    pieces = local_tokenizer(None)
    for window, count in windows:
        assert count <= 62 and count == len(pieces.encode(window, add_special_tokens=False).ids)
        assert window in text and not window.startswith("##")
    assert sum(count for _, count in windows) == len(pieces.encode(
        text, add_special_tokens=False).ids)  # every piece in exactly one window
    assert " ".join(w for w, _ in windows) == text


def test_embed_in_windows_is_the_piece_weighted_mean() -> None:
    pytest.importorskip("tokenizers")
    from ragloom.core.embedders import embed_in_windows, text_windows

    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.stack([HashingEmbedder(dimensions=16).embed_query(t) for t in texts])

    long = " ".join(f"term{n}" for n in range(600))
    got = embed_in_windows(embed, ["short one", long], 16, max_tokens=128)
    windows = text_windows(long, 128)
    assert calls == [["short one", *(w for w, _ in windows)]]  # one call, short text as is
    parts = embed([w for w, _ in windows])
    want = (parts * np.array([[c] for _, c in windows], dtype=np.float32)).sum(axis=0)
    assert np.allclose(got[1], want / np.linalg.norm(want), atol=1e-5)
    assert np.allclose(got[0], embed(["short one"])[0], atol=1e-6)


@pytest.mark.parametrize("cls", [LocalEmbedder, OnnxEmbedder])
def test_local_backends_truncate_by_default_and_pool_windows_on_request(
    cls: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tokenizers")
    seen: list[list[str]] = []

    def fake(self: object, texts: list[str]) -> np.ndarray:
        seen.append(list(texts))
        return np.stack([HashingEmbedder(dimensions=384).embed_query(t) for t in texts])

    monkeypatch.setattr(cls, "embed_truncated", fake)
    long = " ".join(f"term{n}" for n in range(600))
    cls().embed_documents([long])
    assert seen[-1] == [long]  # default: the model's own truncation
    cls(long_texts="mean").embed_documents([long])
    assert len(seen[-1]) > 1 and all(len(w) < len(long) for w in seen[-1])


class _FakeSession:
    """Stands in for an onnxruntime session: hidden states that depend only on each token id,
    a short random sleep so concurrent runs finish out of order, and a failure on `poison`."""

    def __init__(self, poison: int | None = None) -> None:
        self.poison = poison
        self.threads: set[str] = set()
        self.calls = 0
        self._lock = threading.Lock()

    def run(self, _outputs: object, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            self.calls += 1
            self.threads.add(threading.current_thread().name)
        ids = feed["input_ids"]
        time.sleep(random.uniform(0, 0.004))
        if self.poison is not None and (ids == self.poison).any():
            raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : boom")
        columns = np.arange(384, dtype=np.float32)
        return [np.sin(ids[..., None].astype(np.float32) * 0.01 + columns).astype(np.float32)]


def _fake_embedder(monkeypatch: pytest.MonkeyPatch, session: _FakeSession,
                   **kwargs: object) -> OnnxEmbedder:
    pytest.importorskip("tokenizers")
    monkeypatch.setattr(OnnxEmbedder, "_session", lambda self: session)
    return OnnxEmbedder(**kwargs)  # type: ignore[arg-type]


_MIXED = [
    "tax",
    "The cat sat on the warm windowsill in the sun. " * 9,
    "shutil.copyfile(src, dst) copies a file.",
    "An unbelievably long sentence about JSON streaming " * 30,  # truncated at 256 pieces
    "x",
    "Mid-length text about sockets, select() and non-blocking I/O in asyncio.",
]


def test_onnx_concurrent_runs_give_the_one_at_a_time_vectors_in_input_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ragloom.core.embedders import local_tokenizer, normalize

    tokenizer = local_tokenizer(256)
    want = normalize(np.stack([
        np.sin(np.array(tokenizer.encode(t).ids, dtype=np.float32)[:, None] * 0.01
               + np.arange(384, dtype=np.float32)).mean(axis=0) for t in _MIXED
    ]))
    serial = _FakeSession()
    one_at_a_time = _fake_embedder(monkeypatch, serial, threads=1).embed_documents(_MIXED)
    assert serial.threads == {threading.current_thread().name}  # threads=1: no pool at all
    assert serial.calls == len(_MIXED)  # one run per text
    parallel = _FakeSession()
    concurrent = _fake_embedder(monkeypatch, parallel, threads=3).embed_documents(_MIXED)
    assert len(parallel.threads) > 1 and parallel.calls == len(_MIXED)
    assert np.array_equal(concurrent, one_at_a_time)
    assert np.allclose(concurrent, want, atol=1e-5)
    empty = _fake_embedder(monkeypatch, _FakeSession(), threads=3).embed_documents([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32


@pytest.mark.parametrize("threads", [1, 3])
def test_onnx_run_failure_is_a_provider_error_and_stops_the_rest(
    monkeypatch: pytest.MonkeyPatch, threads: int,
) -> None:
    from ragloom.core.embedders import local_tokenizer
    from ragloom.core.errors import ProviderError

    poison = local_tokenizer(256).encode("unbelievably", add_special_tokens=False).ids[0]
    session = _FakeSession(poison=poison)
    embedder = _fake_embedder(monkeypatch, session, threads=threads)
    texts = [*_MIXED, *(f"filler text number {n}" for n in range(40))]
    with pytest.raises(ProviderError, match="onnx embedder run failed"):
        embedder.embed_documents(texts)
    assert session.calls < len(texts)  # the longest (poisoned) text runs first; the rest stop
