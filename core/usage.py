"""The one usage tracker: model calls aggregated per run, per node and in total.

`UsageTracker` keeps sums, never a list of every call: totals, one `Totals` per graph node, one
per run (the newest `max_runs` runs) and the last `keep_recent` calls for inspection, so its
memory stays flat however long a server runs. It is thread-safe (parallel map steps share one).

Scoping (contextvars: it follows LangGraph nodes, asyncio tasks and threads started with a
copied context): the gateway records every call into its own tracker and into every tracker
made active with `tracker.scope()`, so a run or a node counts just its own calls:

    run = UsageTracker()
    with run.scope():
        graph.invoke(...)
    run.totals.tokens

`metered(node)` measures one graph node and fills a per-node record dict: the gateway's calls
reach its tracker through the scope (whichever path they take), and any other LangChain chat
model's calls through a callback handler (so `llm=ChatAnthropic(...)` is counted too; the
handler skips calls tagged `GATEWAY_TAG`, which the gateway records itself). `summarize_usage`
folds a turn's records into totals and a per-node breakdown.

A tracker made with `max_calls` is also a call budget: `admit(record)` refuses the call that
would pass the cap with `BudgetExceededError` (the compile runner counts DSPy calls that way).

Importing this module imports no LangChain: `metered` loads langchain_core on first use.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any

from ragloom.core.errors import BudgetExceededError

__all__ = [
    "GATEWAY_TAG",
    "CallRecord",
    "Totals",
    "UsageTracker",
    "active_trackers",
    "metered",
    "summarize_usage",
]


GATEWAY_TAG = "ragloom-gateway"  # LangChain tag of the gateway's chat models


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One model call as the gateway saw it (`attempts` is 0 for a cache hit)."""

    model: str
    kind: str = "chat"
    attempts: int = 1
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None
    latency_ms: float = 0.0
    node: str | None = None
    run_id: str | None = None
    cached: bool = False
    ok: bool = True
    error: str | None = None


@dataclass(slots=True)
class Totals:
    """Sums over some calls. `cost_usd` is None once any billed call's price is unknown."""

    calls: int = 0
    attempts: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = 0.0
    latency_ms: float = 0.0
    cached: int = 0
    failed: int = 0

    @property
    def tokens(self) -> int:
        """Input plus output tokens."""
        return self.tokens_in + self.tokens_out

    def add(self, record: CallRecord) -> None:
        """Fold one call in."""
        self.calls += 1
        self.attempts += record.attempts
        self.tokens_in += record.tokens_in
        self.tokens_out += record.tokens_out
        self.latency_ms += record.latency_ms
        self.cached += record.cached
        self.failed += not record.ok
        if record.cost_usd is None and not record.cached and record.ok:
            self.cost_usd = None  # one call of unknown price makes the total unknown
        elif self.cost_usd is not None and record.cost_usd is not None:
            self.cost_usd += record.cost_usd

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (cost rounded to 1e-8 USD)."""
        data = asdict(self)
        if data["cost_usd"] is not None:
            data["cost_usd"] = round(data["cost_usd"], 8)
        data["latency_ms"] = round(data["latency_ms"], 3)
        return data


class UsageTracker:
    """Thread-safe, bounded aggregate of model calls (see the module docstring).

    `keep_recent` calls are kept whole (newest last) for tests and debugging; `max_runs` caps
    how many runs keep their own totals (oldest dropped first). `max_calls` / `on_call` make the
    tracker a call budget for `admit`.
    """

    def __init__(
        self,
        *,
        keep_recent: int = 64,
        max_runs: int = 256,
        max_calls: int | None = None,
        on_call: Callable[[int], None] | None = None,
    ) -> None:
        self.max_runs = max_runs
        self.max_calls = max_calls
        self.on_call = on_call
        self.exhausted = False
        self._lock = threading.Lock()
        self._totals = Totals()
        self._nodes: dict[str, Totals] = {}
        self._runs: OrderedDict[str, Totals] = OrderedDict()
        self._recent: deque[CallRecord] = deque(maxlen=keep_recent)

    # -- recording -----------------------------------------------------------------------------

    def record(self, record: CallRecord) -> None:
        """Fold one call into the totals, its node's and its run's."""
        with self._lock:
            self._add(record)

    def admit(self, record: CallRecord) -> int:
        """Record a call about to be made; `BudgetExceededError` when `max_calls` is reached."""
        with self._lock:
            if self.max_calls is not None and self._totals.calls >= self.max_calls:
                self.exhausted = True
                raise BudgetExceededError("calls", self._totals.calls + 1, self.max_calls)
            self._add(record)
            calls = self._totals.calls
        if self.on_call is not None:
            self.on_call(calls)
        return calls

    def _add(self, record: CallRecord) -> None:
        self._totals.add(record)
        node = record.node or "-"
        slot = self._nodes.get(node)
        if slot is None:
            slot = self._nodes[node] = Totals()
        slot.add(record)
        if record.run_id is not None:
            run = self._runs.get(record.run_id)
            if run is None:
                run = self._runs[record.run_id] = Totals()
                if len(self._runs) > self.max_runs:
                    self._runs.popitem(last=False)
            else:
                self._runs.move_to_end(record.run_id)
            run.add(record)
        self._recent.append(record)

    # -- reading -------------------------------------------------------------------------------

    @property
    def totals(self) -> Totals:
        """A copy of the totals over every call recorded."""
        with self._lock:
            return Totals(**asdict(self._totals))

    @property
    def calls(self) -> int:
        return self._totals.calls

    @property
    def attempts(self) -> int:
        return self._totals.attempts

    @property
    def tokens_in(self) -> int:
        return self._totals.tokens_in

    @property
    def tokens_out(self) -> int:
        return self._totals.tokens_out

    @property
    def tokens(self) -> int:
        """Input plus output tokens of every call."""
        return self.totals.tokens

    @property
    def cost_usd(self) -> float | None:
        """Total cost, or None when any billed call's price is unknown."""
        cost = self._totals.cost_usd
        return None if cost is None else round(cost, 8)

    @property
    def recent(self) -> list[CallRecord]:
        """The last `keep_recent` calls, oldest first."""
        with self._lock:
            return list(self._recent)

    def by_node(self) -> dict[str, dict[str, Any]]:
        """Totals per graph node (`"-"` for calls made outside a node)."""
        with self._lock:
            return {node: totals.to_dict() for node, totals in self._nodes.items()}

    def by_run(self) -> dict[str, dict[str, Any]]:
        """Totals per run id (the newest `max_runs` runs)."""
        with self._lock:
            return {run: totals.to_dict() for run, totals in self._runs.items()}

    def run(self, run_id: str) -> Totals | None:
        """One run's totals (None when unknown or already dropped)."""
        with self._lock:
            found = self._runs.get(run_id)
            return None if found is None else Totals(**asdict(found))

    def to_dict(self) -> dict[str, Any]:
        """Totals, per-node and per-run breakdowns and the recent calls, JSON-ready."""
        with self._lock:
            return {
                "totals": self._totals.to_dict(),
                "by_node": {n: t.to_dict() for n, t in self._nodes.items()},
                "by_run": {r: t.to_dict() for r, t in self._runs.items()},
                "recent": [asdict(record) for record in self._recent],
            }

    # -- scoping -------------------------------------------------------------------------------

    @contextmanager
    def scope(self) -> Iterator[UsageTracker]:
        """Inside the block, every gateway call is also recorded here."""
        token = _active.set((*_active.get(), self))
        try:
            yield self
        finally:
            _active.reset(token)


_active: ContextVar[tuple[UsageTracker, ...]] = ContextVar("ragloom_usage_trackers", default=())


def active_trackers() -> tuple[UsageTracker, ...]:
    """The trackers made active with `scope()`, outermost first."""
    return _active.get()


# -- per-node metering for any LangChain chat model -----------------------------------------------

_meter_var: ContextVar[Any] = ContextVar("ragloom_usage_meter", default=None)
_hook_lock = threading.Lock()
_meter_class: type[Any] | None = None


def _meter_type() -> type[Any]:
    """The callback handler class, built (and its configure hook registered) on first use."""
    global _meter_class
    with _hook_lock:
        if _meter_class is not None:
            return _meter_class
        from langchain_core.callbacks import BaseCallbackHandler
        from langchain_core.outputs import ChatGeneration, LLMResult
        from langchain_core.tracers.context import register_configure_hook

        class UsageCallback(BaseCallbackHandler):
            """Feeds every chat-model call LangChain reports into a `UsageTracker`."""

            run_inline = True  # called on the event loop: no executor hop per callback

            def __init__(self, tracker: UsageTracker, node: str) -> None:
                super().__init__()
                self.tracker = tracker
                self.node = node

            def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
                if GATEWAY_TAG in (kwargs.get("tags") or ()):
                    return  # the gateway records its own calls into the scoped tracker
                usage: dict[str, Any] = {}
                model = "chat-model"
                for generations in response.generations:
                    for generation in generations:
                        if isinstance(generation, ChatGeneration):
                            message = generation.message
                            usage = dict(getattr(message, "usage_metadata", None) or {})
                            model = str((message.response_metadata or {}).get("model_name")
                                        or model)
                            break
                self.tracker.record(CallRecord(
                    model=model, node=self.node,
                    tokens_in=int(usage.get("input_tokens") or 0),
                    tokens_out=int(usage.get("output_tokens") or 0),
                ))

        register_configure_hook(_meter_var, inheritable=True)
        _meter_class = UsageCallback
        return _meter_class


@contextmanager
def metered(node: str) -> Iterator[dict[str, Any]]:
    """Measure one node; the yielded dict is filled with its usage on exit
    (`node`, `latency_ms`, `llm_calls`, `tokens_in`, `tokens_out`)."""
    tracker = UsageTracker(keep_recent=0, max_runs=0)
    token = _meter_var.set(_meter_type()(tracker, node))
    record: dict[str, Any] = {"node": node}
    started = time.perf_counter()
    try:
        with tracker.scope():
            yield record
    finally:
        _meter_var.reset(token)
        totals = tracker.totals
        record.update(
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            llm_calls=totals.calls,
            tokens_in=totals.tokens_in,
            tokens_out=totals.tokens_out,
        )


def only_usage_callbacks(handlers: Any) -> bool:
    """True when `handlers` (LangChain callback handlers) are none but `metered`'s own."""
    meter = _meter_class
    return all(meter is not None and isinstance(handler, meter) for handler in handlers or ())


def summarize_usage(
    log: list[dict[str, Any]], price: Callable[[int, int], float | None] | None = None
) -> dict[str, Any]:
    """Totals and a per-node breakdown of a turn's usage log (records from `metered`)."""
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
