"""N concurrent asks (ainvoke) on the openai engine against the local OpenAI-compatible server
with a fixed latency per call; compares wall time with the ideal (the longest chain of
sequential LLM waves per ask × latency). The server runs in its own process. Prints JSON.

    python benchmarks/concurrent_asks.py [--asks 256] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WAVES = ["route", "rewrite_query", "grade_documents", "generate_answer", "check_grounding"]


def serve(port_queue: Any, latency: float) -> None:
    """Run the scripted server until killed (in a child process)."""
    from ragloom.core.testing import OpenAICompatibleServer
    from tests.graphs.llm_script import AssistantLLM

    server = OpenAICompatibleServer(AssistantLLM(), delay=latency).start()
    port_queue.put(server.base_url)
    while True:
        time.sleep(3600)


async def run(base_url: str, asks: int) -> dict[str, Any]:
    from ragloom.core.settings import BudgetSettings
    from ragloom.core.testing import make_test_settings
    from ragloom.graphs.assistant import build_assistant
    from tests.graphs.fakes import ListStore, sample_chunks

    tmp = Path("/tmp/ragloom-bench-concurrent")
    settings = make_test_settings(tmp, base_url=base_url).model_copy(
        update={"budget": BudgetSettings(max_seconds=600, max_tokens=None)}
    )
    graph = build_assistant(
        settings, store=ListStore(sample_chunks()), persist=False
    )
    await graph.ainvoke({"question": "warm up: octal?"})
    started = time.perf_counter()
    results = await asyncio.gather(
        *(graph.ainvoke({"question": f"How do I write octal number {i}?"}) for i in range(asks))
    )
    wall = time.perf_counter() - started
    calls = sum(r["usage"]["llm_calls"] for r in results)
    answered = sum(bool(r["citations"]) for r in results)
    return {"wall_s": wall, "llm_calls": calls, "answered": answered}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--asks", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    queue: Any = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(queue, args.latency), daemon=True)
    server.start()
    try:
        base_url = queue.get(timeout=60)
        single = asyncio.run(run(base_url, 1))
        many = asyncio.run(run(base_url, args.asks))
    finally:
        server.kill()
    ideal = len(WAVES) * args.latency
    print(json.dumps({
        "asks": args.asks,
        "latency_per_call_s": args.latency,
        "llm_calls_per_ask": many["llm_calls"] / args.asks,
        "sequential_llm_waves_per_ask": len(WAVES),
        "ideal_wall_s": round(ideal, 3),
        "one_ask_wall_s": round(single["wall_s"], 3),
        "concurrent_wall_s": round(many["wall_s"], 3),
        "ratio_to_ideal": round(many["wall_s"] / ideal, 3),
        "answered_with_citations": many["answered"],
    }, indent=2))


if __name__ == "__main__":
    main()
