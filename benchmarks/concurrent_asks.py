"""N concurrent asks (ainvoke) on the openai engine against the local OpenAI-compatible server
with a fixed latency per call; compares wall time with the ideal (the measured chain of
sequential LLM waves per ask × latency). The server runs in its own process and reports the
time it received each chat request: `sequential_llm_waves_per_ask` is counted from those
timestamps for single asks (a new wave starts when a request arrives more than half a latency
after the previous one), not taken from a constant. Prints JSON.

    python benchmarks/concurrent_asks.py [--asks 256] [--latency 0.1]
        [--checkpointer memory|postgres] [--postgres-url URL] [--gc default|tuned]
        [--server async|threaded]

`--server async` (the default) is `benchmarks/latency_server.py` (aiohttp.web, same script and
replies); `threaded` is `ragloom.core.testing.OpenAICompatibleServer`, which spends more CPU per
request with hundreds of connections (see latency_server.py).

`--checkpointer postgres` runs every ask on its own thread in PostgreSQL (the pooled saver of
`ragloom.graphs.checkpointers`; URL from `--postgres-url` or RAGLOOM_TEST_POSTGRES_URL).
`--gc tuned` applies what a server process may do after start-up (`gc.freeze()`, gen-0 threshold
50,000): the figures say what that buys; the library itself never changes it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import multiprocessing
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def serve_threaded(port_queue: Any, control: Any, latency: float) -> None:
    """Run the threaded test server (in a child process); on "times", send back the arrival
    times of the chat requests since the last "times" and forget them."""
    from ragloom.core.testing import OpenAICompatibleServer
    from tests.graphs.llm_script import AssistantLLM

    server = OpenAICompatibleServer(AssistantLLM(), delay=latency).start()
    port_queue.put(server.base_url)
    while True:
        if control.recv() == "times":
            times = [r.received_at for r in server.chat_requests()]
            server.requests.clear()
            control.send(times)


def server_for(kind: str) -> Any:
    """The server process's target: "async" (latency_server.py) or "threaded"."""
    if kind == "threaded":
        return serve_threaded
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from latency_server import serve

    return serve


def waves(times: list[float], latency: float) -> int:
    """Sequential waves in one ask's request arrival times (gap > latency / 2 = a new wave)."""
    ordered = sorted(times)
    if not ordered:
        return 0
    return 1 + sum(1 for a, b in itertools.pairwise(ordered) if b - a > latency / 2)


def _graph(base_url: str, checkpointer: str, postgres_url: str | None) -> Any:
    from ragloom.core.settings import BudgetSettings, CheckpointerSettings
    from ragloom.core.testing import make_test_settings
    from ragloom.graphs.assistant import build_assistant
    from tests.graphs.fakes import ListStore, sample_chunks

    tmp = Path("/tmp/ragloom-bench-concurrent")
    settings = make_test_settings(tmp, base_url=base_url).model_copy(
        update={"budget": BudgetSettings(max_seconds=600, max_tokens=None)}
    )
    settings.llm = settings.llm.model_copy(update={"timeout": 120.0, "deadline": 600.0})
    if checkpointer == "postgres":
        from ragloom.graphs.checkpointers import build_checkpointer

        saver = build_checkpointer(CheckpointerSettings(kind="postgres",
                                                        postgres_url=postgres_url))
        return build_assistant(settings, store=ListStore(sample_chunks()), checkpointer=saver)
    from langgraph.checkpoint.memory import InMemorySaver  # threads kept, as a server keeps them

    return build_assistant(settings, store=ListStore(sample_chunks()), checkpointer=InMemorySaver())


def _config() -> dict[str, Any]:
    return {"configurable": {"thread_id": f"bench-{uuid.uuid4().hex[:12]}"}}


async def run(graph: Any, asks: int, durability: str | None = None) -> dict[str, Any]:
    await graph.ainvoke({"question": "warm up: octal?"}, _config())
    started, cpu = time.perf_counter(), time.process_time()
    results = await asyncio.gather(
        *(graph.ainvoke({"question": f"How do I write octal number {i}?"}, _config(),
                        durability=durability)
          for i in range(asks))
    )
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    calls = sum(r["usage"]["llm_calls"] for r in results)
    answered = sum(bool(r["citations"]) for r in results)
    return {"wall_s": wall, "cpu_s": cpu, "llm_calls": calls, "answered": answered}


async def single_asks(graph: Any, control: Any, latency: float, count: int) -> dict[str, Any]:
    """`count` single asks one after another: wall time and waves from the server's clock."""
    await graph.ainvoke({"question": "warm up: octal?"}, _config())
    control.send("times")
    control.recv()
    walls, counted = [], []
    for i in range(count):
        started = time.perf_counter()
        await graph.ainvoke({"question": f"How do I write octal number {i}?"}, _config())
        walls.append(time.perf_counter() - started)
        control.send("times")
        counted.append(waves(control.recv(), latency))
    return {"wall_s": min(walls), "waves": counted}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--asks", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--singles", type=int, default=3, help="single asks timed for waves")
    parser.add_argument("--checkpointer", choices=["memory", "postgres"], default="memory")
    parser.add_argument("--postgres-url", default=os.environ.get("RAGLOOM_TEST_POSTGRES_URL"))
    parser.add_argument("--gc", choices=["default", "tuned"], default="default")
    parser.add_argument("--server", choices=["async", "threaded"], default="async")
    parser.add_argument("--durability", choices=["async", "exit"], default=None,
                        help="LangGraph's checkpoint durability for the concurrent asks")
    args = parser.parse_args()
    if args.checkpointer == "postgres" and not args.postgres_url:
        parser.error("--checkpointer postgres needs --postgres-url or RAGLOOM_TEST_POSTGRES_URL")
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    queue: Any = multiprocessing.Queue()
    control, child_end = multiprocessing.Pipe()
    server = multiprocessing.Process(target=server_for(args.server),
                                     args=(queue, child_end, args.latency), daemon=True)
    server.start()
    try:
        base_url = queue.get(timeout=60)
        graph = _graph(base_url, args.checkpointer, args.postgres_url)
        if args.gc == "tuned":
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 50, 100)
        single = asyncio.run(single_asks(graph, control, args.latency, args.singles))
        many = asyncio.run(run(graph, args.asks, args.durability))
    finally:
        server.kill()
    measured_waves = max(single["waves"])
    ideal = measured_waves * args.latency
    print(json.dumps({
        "asks": args.asks,
        "latency_per_call_s": args.latency,
        "checkpointer": args.checkpointer,
        "gc": args.gc,
        "server": args.server,
        "durability": args.durability or "async",
        "llm_calls_per_ask": many["llm_calls"] / args.asks,
        "sequential_llm_waves_per_ask": measured_waves,
        "waves_of_each_single_ask": single["waves"],
        "ideal_wall_s": round(ideal, 3),
        "one_ask_wall_s": round(single["wall_s"], 3),
        "concurrent_wall_s": round(many["wall_s"], 3),
        "concurrent_to_one_ask": round(many["wall_s"] / single["wall_s"], 2),
        "ratio_to_ideal": round(many["wall_s"] / ideal, 3),
        "client_cpu_ms_per_llm_call": round(many["cpu_s"] * 1000 / max(1, many["llm_calls"]), 3),
        "answered_with_citations": many["answered"],
    }, indent=2))


if __name__ == "__main__":
    main()
