"""Summarizer fan-out against a slow LLM: wall time vs the ideal for bounded concurrency.

A document of `--chunks` sections goes through `build_summarizer` with the DSPy map/reduce
roles, through the LLM gateway, to the local OpenAI-compatible server answering every call
after `--delay` seconds. With at most `--concurrency` map calls in flight, the ideal wall time is
(map waves + reduce levels) x delay, map waves = ceil(chunks / concurrency). The acceptance bound
is 1.5 x ideal.

    python benchmarks/summary_concurrency.py [--chunks 200] [--delay 0.1] [--concurrency 8]

Prints JSON: wall seconds, ideal seconds, ratio, peak in-flight requests, LLM calls, strategy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import threading
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class _Responder:
    """Scripted map/reduce replies; tracks peak concurrency."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0

    def __call__(self, request: dict[str, Any]) -> str:
        from ragloom.prompts.testing import chat_reply, input_field

        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            time.sleep(self.delay)
            if "`sections`" in str(request["messages"][0]["content"]):
                return chat_reply(summary="## Overview\n\nA long document, summarized.")
            return chat_reply(summary=f"Summary of {input_field(request, 'heading')}.")
        finally:
            with self.lock:
                self.in_flight -= 1


def make_document(sections: int) -> str:
    parts = []
    for i in range(sections):
        body = " ".join(f"Sentence {j} of section {i} carries a fact." for j in range(20))
        parts.append(f"# Section {i}\n\n{body}")
    return "\n\n".join(parts)


async def _run(graph: Any, text: str) -> dict[str, Any]:
    document = {"source": "long.md", "title": "Long", "text": text}
    return await graph.ainvoke({"documents": [document], "length": "short"})  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    from ragloom.core.llm import LLMGateway
    from ragloom.core.logging import configure_logging
    from ragloom.core.settings import LLMSettings, load_settings
    from ragloom.core.testing.openai_server import OpenAICompatibleServer
    from ragloom.graphs.summarizer import build_summarizer

    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    configure_logging(level="WARNING")

    responder = _Responder(args.delay)
    text = make_document(args.chunks)
    with OpenAICompatibleServer(responder) as server:
        gateway = LLMGateway(
            LLMSettings(base_url=server.base_url, model="test-model", max_retries=0)
        )
        graph = build_summarizer(
            load_settings(), llm=gateway, max_concurrency=args.concurrency, chunk_tokens=400,
            token_budget=20_000,
        )  # fmt: skip
        started = time.perf_counter()
        result = asyncio.run(_run(graph, text))
        wall = time.perf_counter() - started
    waves = math.ceil(result["chunks"] / args.concurrency)
    reduce_levels = max(1, result["levels"])  # collapse levels (if any) plus the final reduce
    ideal = (waves + reduce_levels) * args.delay
    report = {
        "chunks": result["chunks"],
        "strategy": result["strategy"],
        "llm_calls": result["llm_calls"],
        "concurrency": args.concurrency,
        "peak_in_flight": responder.peak,
        "delay_s": args.delay,
        "map_waves": waves,
        "reduce_levels": reduce_levels,
        "wall_s": round(wall, 3),
        "ideal_s": round(ideal, 3),
        "ratio": round(wall / ideal, 3),
        "within_1_5x": wall <= 1.5 * ideal,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
