"""Per-run budgets and the call ledger that graphs check.

`Ledger` records every model call (attempts, tokens, cost, latency, node); it is thread-safe so
parallel map steps can share one. `Budget` holds the limits (steps, tokens, seconds, cost):
`check` names the first limit used up (or None) and `enforce` raises `BudgetExceededError`, a
typed condition graphs catch to answer with a caveat instead of crashing.

The gateway records into its own ledger and into every ledger made active with `track(ledger)`,
so a run can count just its own calls (contextvars: it follows threads started with a copied
context, LangGraph nodes and asyncio tasks):

    with track(Ledger()) as run_ledger:
        graph.invoke(...)
    budget.check(run_ledger, steps, started_at)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ragloom.core.errors import BudgetExceededError

if TYPE_CHECKING:
    from ragloom.core.settings import BudgetSettings

Limit = Literal["steps", "tokens", "seconds", "cost"]


@dataclass(frozen=True)
class CallRecord:
    """One model call as the ledger saw it (`attempts` is 0 for a cache hit)."""

    model: str
    kind: str = "chat"
    attempts: int = 1
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None
    latency_ms: float = 0.0
    node: str | None = None
    cached: bool = False
    ok: bool = True
    error: str | None = None


@dataclass
class _Totals:
    calls: int = 0
    attempts: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = 0.0
    latency_ms: float = 0.0
    cached: int = 0
    failed: int = 0

    def add(self, record: CallRecord) -> None:
        self.calls += 1
        self.attempts += record.attempts
        self.tokens_in += record.tokens_in
        self.tokens_out += record.tokens_out
        self.latency_ms += record.latency_ms
        self.cached += int(record.cached)
        self.failed += int(not record.ok)
        if record.cost_usd is None and not record.cached and record.ok:
            self.cost_usd = None  # one call of unknown price makes the total unknown
        elif self.cost_usd is not None and record.cost_usd is not None:
            self.cost_usd += record.cost_usd


@dataclass
class Ledger:
    """Thread-safe record of model calls with totals and a per-node breakdown."""

    records: list[CallRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def record(self, record: CallRecord) -> None:
        """Add one call."""
        with self._lock:
            self.records.append(record)

    def snapshot(self) -> list[CallRecord]:
        """A copy of the records so far."""
        with self._lock:
            return list(self.records)

    def _totals(self, records: list[CallRecord]) -> _Totals:
        totals = _Totals()
        for record in records:
            totals.add(record)
        if totals.cost_usd is not None:
            totals.cost_usd = round(totals.cost_usd, 8)
        return totals

    @property
    def calls(self) -> int:
        return len(self.snapshot())

    @property
    def attempts(self) -> int:
        return self._totals(self.snapshot()).attempts

    @property
    def tokens_in(self) -> int:
        return self._totals(self.snapshot()).tokens_in

    @property
    def tokens_out(self) -> int:
        return self._totals(self.snapshot()).tokens_out

    @property
    def tokens(self) -> int:
        """Input plus output tokens of every call."""
        totals = self._totals(self.snapshot())
        return totals.tokens_in + totals.tokens_out

    @property
    def cost_usd(self) -> float | None:
        """Total cost, or None when any billed call's price is unknown."""
        return self._totals(self.snapshot()).cost_usd

    def by_node(self) -> dict[str, dict[str, Any]]:
        """Totals per graph node (`"-"` for calls made outside a node)."""
        groups: dict[str, list[CallRecord]] = {}
        for record in self.snapshot():
            groups.setdefault(record.node or "-", []).append(record)
        return {node: asdict(self._totals(records)) for node, records in groups.items()}

    def to_dict(self) -> dict[str, Any]:
        """Totals, per-node breakdown and the calls, JSON-ready."""
        records = self.snapshot()
        return {
            "totals": asdict(self._totals(records)),
            "by_node": self.by_node(),
            "calls": [asdict(record) for record in records],
        }


@dataclass(frozen=True)
class Budget:
    """Limits for one run; None means unlimited."""

    max_steps: int | None = 24
    max_tokens: int | None = 32_000
    max_seconds: float | None = 120.0
    max_cost_usd: float | None = None

    @classmethod
    def from_settings(cls, settings: BudgetSettings) -> Budget:
        """The budget configured in `settings.budget`."""
        return cls(settings.max_steps, settings.max_tokens, settings.max_seconds,
                   settings.max_cost_usd)

    def usage(
        self,
        ledger: Ledger,
        steps: int,
        started_at: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> dict[Limit, tuple[float, float | None]]:
        """Used vs allowed for each limit."""
        return {
            "steps": (steps, self.max_steps),
            "tokens": (ledger.tokens, self.max_tokens),
            "seconds": (clock() - started_at, self.max_seconds),
            "cost": (ledger.cost_usd or 0.0, self.max_cost_usd),
        }

    def check(
        self,
        ledger: Ledger,
        steps: int,
        started_at: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> Limit | None:
        """The first exhausted limit (`steps`, `tokens`, `seconds`, `cost`), or None."""
        for limit, (used, allowed) in self.usage(ledger, steps, started_at, clock).items():
            if allowed is not None and used >= allowed:
                return limit
        return None

    def enforce(
        self,
        ledger: Ledger,
        steps: int,
        started_at: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Raise `BudgetExceededError` naming the exhausted limit, if any."""
        usage = self.usage(ledger, steps, started_at, clock)
        limit = self.check(ledger, steps, started_at, clock)
        if limit is not None:
            used, allowed = usage[limit]
            raise BudgetExceededError(limit, float(used), float(allowed or 0))


_active_ledgers: ContextVar[tuple[Ledger, ...]] = ContextVar("ragloom_ledgers", default=())


@contextmanager
def track(ledger: Ledger) -> Iterator[Ledger]:
    """Inside the block, every gateway call is also recorded in `ledger`."""
    token = _active_ledgers.set((*_active_ledgers.get(), ledger))
    try:
        yield ledger
    finally:
        _active_ledgers.reset(token)


def active_ledgers() -> tuple[Ledger, ...]:
    """The ledgers made active with `track`, outermost first."""
    return _active_ledgers.get()
