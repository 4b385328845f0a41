"""Ingest throughput and re-ingest cost with the local embedder (prints JSON).

`--embedder torch|onnx` picks the local model's runtime (chunking at the shipped defaults).

Copies the corpus to a scratch folder (so one file can be edited), then:
1. ingests it into a fresh embedded store (first run: chunks/s, share of time embedding);
2. ingests it again (every file unchanged: nothing embedded; time as a share of run 1);
3. edits one file and ingests again (only that file's chunks are re-embedded);
4. restores the file and ingests again, leaving a store identical to the corpus.

    python benchmarks/ingest_bench.py --corpus ../shared/datasets/python-docs/corpus \
        --store /tmp/pydocs-store/store.db

`--compare-backends N` instead times the local model's two backends on the same N chunks (the
shipped chunker's contextual texts, every few files of the corpus), torch and ONNX int8
alternating for `--rounds` rounds so both see the same machine load, on the same thread count
(`--threads`, default the embedders' own: every core, at most 8), and prints chunks/s of each, their
ratio per round and the cosine between the two backends' vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragloom.core.embedders import LOCAL_MAX_TOKENS, LocalEmbedder, OnnxEmbedder, local_tokenizer
from ragloom.core.logging import configure_logging
from ragloom.core.testing.embedders import HashingEmbedder
from ragloom.tools.ingest import ingest_paths
from ragloom.tools.ingest.chunking import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP
from ragloom.tools.stores.embedded import EmbeddedStore


def main() -> None:
    configure_logging("WARNING")  # logs to stderr; stdout carries only the JSON
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--store", type=Path, required=True, help="overwritten")
    parser.add_argument("--edit", default="library/json.rst", help="file to edit (relative)")
    parser.add_argument("--embedder", choices=["torch", "onnx", "hashing"], default="torch",
                        help="the local model on torch or ONNX int8, or the hashing test embedder")
    parser.add_argument("--chunk-tokens", type=int, default=DEFAULT_CHUNK_TOKENS)
    parser.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP)
    parser.add_argument("--compare-backends", type=int, default=0, metavar="N")
    parser.add_argument("--skip", type=int, default=0, metavar="K",
                        help="--compare-backends: start the sample after its first K texts")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None,
                        help="both backends' thread count (default: the embedders' own)")
    args = parser.parse_args()
    if args.compare_backends:
        print(json.dumps(compare_backends(args.corpus, args.compare_backends, args.rounds,
                                          args.threads, args.skip),
                         indent=2))
        return

    for suffix in ("", "-wal", "-shm"):
        Path(f"{args.store}{suffix}").unlink(missing_ok=True)
    if args.embedder == "hashing":
        embedder = HashingEmbedder(384)
    else:
        embedder = LocalEmbedder() if args.embedder == "torch" else OnnxEmbedder()
    started = time.perf_counter()
    embedder.embed_documents(["warm up"])
    load_seconds = time.perf_counter() - started
    store = EmbeddedStore(args.store, embedder)
    scratch = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    corpus = scratch / "corpus"
    shutil.copytree(args.corpus, corpus)
    edited = corpus / args.edit
    original = edited.read_text(encoding="utf-8")
    runs = {}
    try:
        def run(name: str) -> dict:
            report = ingest_paths([corpus], store, root=corpus, chunk_tokens=args.chunk_tokens,
                                  overlap=args.overlap, progress=False)
            data = report.to_dict()
            data["failed"] = [f.__dict__ for f in report.failed]
            data["share_embedding"] = round(report.seconds_embedding / report.seconds, 3)
            runs[name] = data
            print(name, json.dumps(data), file=sys.stderr, flush=True)
            return data

        first = run("first")
        second = run("second")
        edited.write_text(original + "\n\nAn added paragraph about JSON streaming.\n",
                          encoding="utf-8")
        file_chunks = len(store.get_source(args.edit))
        third = run("edit_one_file")
        edited.write_text(original, encoding="utf-8")
        run("restore")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "embedder": embedder.name,
        "model_load_seconds": round(load_seconds, 2),
        "chunks": store.count(),
        "sources": len(store.sources()),
        "runs": runs,
        "second_over_first": round(second["seconds"] / first["seconds"], 4),
        "edited_file": args.edit,
        "edited_file_chunks": file_chunks,
        "edit_reembedded_chunks": third["chunks_embedded"],
        "cpu_count": os.cpu_count(),
        "loadavg_end": os.getloadavg(),
    }
    store.close()
    print(json.dumps(result, indent=2))


def compare_backends(
    corpus: Path, n: int, rounds: int, threads: int | None = None, skip: int = 0
) -> dict:
    """chunks/s of torch vs ONNX int8 on the same contextual chunk texts, alternating, both on
    the same thread count."""
    from ragloom.tools.ingest import load_document, split_document
    from ragloom.tools.stores.base import embed_text

    texts: list[str] = []
    for path in sorted(corpus.rglob("*.rst"))[::5]:
        texts += [embed_text(c) for c in split_document(load_document(path))]
        if len(texts) >= skip + n:
            break
    texts = texts[skip:skip + n]
    pieces = local_tokenizer(LOCAL_MAX_TOKENS).encode_batch(texts)
    backends = {"torch": LocalEmbedder(threads=threads), "onnx-int8": OnnxEmbedder(threads=threads)}
    for embedder in backends.values():
        embedder.embed_documents(texts[:2])  # load (and, once, export) outside the timing
    assert backends["torch"].threads == backends["onnx-int8"].threads
    result: dict = {"chunks": len(texts), "skipped": skip,
                    "mean_word_pieces": round(sum(len(p.ids) for p in pieces) / len(texts), 1),
                    "threads": backends["torch"].threads,
                    "cpu_count": os.cpu_count(), "loadavg_start": os.getloadavg(), "rounds": []}
    vectors = {}
    for _ in range(rounds):
        row = {}
        for name, embedder in backends.items():
            started = time.perf_counter()
            vectors[name] = embedder.embed_documents(texts)
            row[name] = round(len(texts) / (time.perf_counter() - started), 2)
        row["ratio"] = round(row["onnx-int8"] / row["torch"], 2)
        result["rounds"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    cosine = (vectors["torch"] * vectors["onnx-int8"]).sum(axis=1)
    result["cosine_min"] = round(float(cosine.min()), 4)
    result["cosine_mean"] = round(float(cosine.mean()), 4)
    result["loadavg_end"] = os.getloadavg()
    return result


if __name__ == "__main__":
    main()
