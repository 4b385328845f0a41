"""Per-node usage: LLM calls, tokens and latency measured around each graph node.

A LangChain callback handler registered through a context variable sees every chat-model call
made inside the node (the gateway's ChatOpenAI, including calls made by DSPy modules through the
gateway's adapter), whatever thread or task the node runs in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.tracers.context import register_configure_hook


class UsageMeter(BaseCallbackHandler):
    """Counts chat-model calls and tokens reported in `AIMessage.usage_metadata`."""

    run_inline = True  # called on the event loop: no executor hop per callback

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.llm_calls = 0
        self.tokens_in = 0
        self.tokens_out = 0

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        usage: dict[str, Any] = {}
        for generations in response.generations:
            for generation in generations:
                if isinstance(generation, ChatGeneration):
                    usage = dict(getattr(generation.message, "usage_metadata", None) or {})
                    break
        with self._lock:
            self.llm_calls += 1
            self.tokens_in += int(usage.get("input_tokens") or 0)
            self.tokens_out += int(usage.get("output_tokens") or 0)


_active_meter: ContextVar[UsageMeter | None] = ContextVar("ragloom_usage_meter", default=None)
register_configure_hook(_active_meter, inheritable=True)


@contextmanager
def metered(node: str) -> Iterator[dict[str, Any]]:
    """Measure one node; the yielded dict is filled with its usage on exit."""
    meter = UsageMeter()
    token = _active_meter.set(meter)
    record: dict[str, Any] = {"node": node}
    started = time.perf_counter()
    try:
        yield record
    finally:
        _active_meter.reset(token)
        record.update(
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            llm_calls=meter.llm_calls,
            tokens_in=meter.tokens_in,
            tokens_out=meter.tokens_out,
        )


def summarize_usage(log: list[dict[str, Any]], price: Any = None) -> dict[str, Any]:
    """Totals and a per-node breakdown of a turn's usage log."""
    per_node: dict[str, dict[str, float]] = {}
    for entry in log:
        slot = per_node.setdefault(
            entry["node"],
            {"calls": 0, "llm_calls": 0, "tokens_in": 0, "tokens_out": 0, "latency_ms": 0.0},
        )
        slot["calls"] += 1
        for key in ("llm_calls", "tokens_in", "tokens_out", "latency_ms"):
            slot[key] += entry.get(key, 0)
    tokens_in = sum(e.get("tokens_in", 0) for e in log)
    tokens_out = sum(e.get("tokens_out", 0) for e in log)
    cost = price(tokens_in, tokens_out) if price else None
    return {
        "llm_calls": sum(e.get("llm_calls", 0) for e in log),
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "cost_usd": cost,
        "latency_ms": round(sum(e.get("latency_ms", 0.0) for e in log), 3),
        "nodes": per_node,
    }
