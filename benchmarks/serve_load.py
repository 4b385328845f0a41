"""Load on `ragloom serve`: requests/s and p50/p95 latency for N concurrent clients (loopback).

One run measures, on the same corpus and questions:
  - the offline (extractive) assistant on 1 worker and on 2 workers,
  - the openai engine against the local OpenAI-compatible server at a fixed latency per LLM call
    (default 100 ms; the server runs in its own process), on 1 and on 2 workers.
Each configuration starts `python -m ragloom serve` as a process (its own SQLite threads and
embedded store over a copy of the FAQ corpus, hashing embedder), warms every worker, then runs
`--clients` concurrent clients, each sending `--requests` POST /v1/ask on fresh threads, with a
time limit per configuration. Prints JSON.

    python benchmarks/serve_load.py [--clients 64] [--requests 3] [--latency 0.1]
        [--limit-s 180] [--skip-openai]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "datasets" / "python-docs"
KEY = "bench-key-0123456789abcdef0123"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _llm_server(port_queue: Any, latency: float) -> None:
    """The scripted OpenAI-compatible server, in a child process (off the client's GIL)."""
    sys.path.insert(0, str(REPO))
    from ragloom.core.testing import OpenAICompatibleServer
    from tests.graphs.llm_script import AssistantLLM

    server = OpenAICompatibleServer(AssistantLLM(), delay=latency).start()
    port_queue.put(server.base_url)
    while True:
        time.sleep(3600)


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGLOOM_", "OPENAI_"))}
    env.update({
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "RAGLOOM_ENGINE": "extractive",
        "RAGLOOM_EMBEDDER__KIND": "hashing", "RAGLOOM_EMBEDDER__DIMENSIONS": "256",
        "RAGLOOM_STORE__PATH": str(root / "store.db"),
        "RAGLOOM_CHECKPOINTER__PATH": str(root / "threads.db"),
        "RAGLOOM_SERVER__API_KEYS": json.dumps([{"key": KEY, "tenant": "bench"}]),
        "RAGLOOM_LOG_LEVEL": "WARNING", "RAGLOOM_LOG_FORMAT": "json",
    })  # fmt: skip
    env.update(extra)
    return env


def _ingest(root: Path, env: dict[str, str]) -> None:
    corpus = root / "faq"
    shutil.copytree(CORPUS / "corpus" / "faq", corpus)
    subprocess.run(
        [sys.executable, "-m", "ragloom", "ingest", str(corpus), "--root", str(corpus),
         "--tenant", "bench"],
        cwd=root, env=env, check=True, capture_output=True, timeout=600,
    )  # fmt: skip


def _questions() -> list[str]:
    lines = (CORPUS / "questions.jsonl").read_text().splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


async def _wait_up(base: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                if (await client.get("/healthz", timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("server did not start")


async def _load(
    base: str, questions: list[str], clients: int, requests: int, limit_s: float, workers: int
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {KEY}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120,
                                 limits=limits) as http:
        seen: set[str] = set()
        for round_ in range(10):  # warm every worker (graph build, first queries)
            replies = await asyncio.gather(*(
                http.post("/v1/ask", json={"question": questions[(round_ + i) % len(questions)]},
                          headers={"Connection": "close"})
                for i in range(4 * workers)
            ))  # fmt: skip
            seen |= {r.headers.get("X-Ragloom-Worker", "?") for r in replies}
            if len(seen) >= workers and round_ >= 1:
                break
        latencies: list[float] = []
        errors: dict[str, int] = {}
        answered_by: dict[str, int] = {}
        deadline = time.monotonic() + limit_s

        async def client(index: int) -> None:
            for turn in range(requests):
                if time.monotonic() > deadline:
                    return
                question = questions[(index * requests + turn) % len(questions)]
                started = time.perf_counter()
                try:
                    reply = await http.post("/v1/ask", json={
                        "question": question, "thread_id": f"load-{uuid.uuid4().hex[:12]}"})
                    ok = reply.status_code == 200
                    kind = str(reply.status_code)
                    worker = reply.headers.get("X-Ragloom-Worker", "?")
                    answered_by[worker] = answered_by.get(worker, 0) + 1
                except httpx.HTTPError as exc:
                    ok, kind = False, type(exc).__name__
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors[kind] = errors.get(kind, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        wall = time.perf_counter() - started
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)

    return {
        "workers": workers, "clients": clients, "ok": len(ordered), "errors": errors,
        "wall_s": round(wall, 2), "requests_per_s": round(len(ordered) / wall, 2),
        "p50_ms": pct(0.50) if ordered else None, "p95_ms": pct(0.95) if ordered else None,
        "mean_ms": round(1000 * statistics.fmean(ordered), 1) if ordered else None,
        "workers_warmed": len(seen), "answers_per_worker": sorted(answered_by.values()),
    }  # fmt: skip


async def _run_config(
    name: str, root: Path, env: dict[str, str], workers: int, args: argparse.Namespace,
    questions: list[str],
) -> dict[str, Any]:
    port = _free_port()
    log = (root / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "ragloom", "serve", "--port", str(port), "--workers", str(workers)],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_up(base, process, timeout=180)
        result = await _load(base, questions, args.clients, args.requests, args.limit_s, workers)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
    return {"config": name, **result}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    questions = _questions()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ragloom-serve-load-") as folder:
        root = Path(folder)
        env = _env(root)
        _ingest(root, env)
        for workers in (1, 2):
            results.append(await _run_config(f"extractive-{workers}w", root, env, workers, args,
                                             questions))
        if not args.skip_openai:
            context = multiprocessing.get_context("spawn")
            port_queue = context.Queue()
            llm = context.Process(target=_llm_server, args=(port_queue, args.latency),
                                  daemon=True)
            llm.start()
            try:
                base_url = port_queue.get(timeout=120)
                openai_env = _env(root, RAGLOOM_ENGINE="openai", RAGLOOM_LLM__BASE_URL=base_url,
                                  RAGLOOM_LLM__API_KEY="sk-bench-not-a-real-key-000",
                                  RAGLOOM_LLM__MODEL="test-model",
                                  RAGLOOM_PROMPTS__COMPILED_DIR=str(root / "compiled"))
                for workers in (1, 2):
                    name = f"openai-{round(args.latency * 1000)}ms-{workers}w"
                    results.append(await _run_config(name, root, openai_env, workers, args,
                                                     questions))
            finally:
                llm.terminate()
    return {
        "benchmark": "serve_load", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(), "latency_s": args.latency, "requests_per_client": args.requests,
        "results": results,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=3, help="requests per client")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per LLM call")
    parser.add_argument("--limit-s", type=float, default=180.0, help="time limit per config")
    parser.add_argument("--skip-openai", action="store_true")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
