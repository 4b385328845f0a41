"""Budgets, the ledger and the price table."""

from __future__ import annotations

import json
import threading

import pytest

from ragloom.core.budget import Budget, CallRecord, Ledger, active_ledgers, track
from ragloom.core.errors import BudgetExceededError
from ragloom.core.llm import LLMGateway
from ragloom.core.pricing import cost_usd, price_for
from ragloom.core.settings import BudgetSettings
from tests.core.conftest import FakeClock


def _record(**kwargs: object) -> CallRecord:
    values: dict[str, object] = {"model": "gpt-4o-mini", "tokens_in": 100, "tokens_out": 50,
                                 "cost_usd": 0.001, "latency_ms": 10.0}
    values.update(kwargs)
    return CallRecord(**values)  # type: ignore[arg-type]


def test_ledger_totals_and_per_node_breakdown() -> None:
    ledger = Ledger()
    ledger.record(_record(node="retrieve", attempts=1))
    ledger.record(_record(node="generate", attempts=4))
    ledger.record(_record(node="generate", attempts=1, tokens_in=10, tokens_out=5))
    ledger.record(_record(node=None, cached=True, attempts=0, cost_usd=0.0))
    assert ledger.calls == 4
    assert ledger.attempts == 6
    assert ledger.tokens_in == 310 and ledger.tokens_out == 155 and ledger.tokens == 465
    assert ledger.cost_usd == pytest.approx(0.003)
    nodes = ledger.by_node()
    assert set(nodes) == {"retrieve", "generate", "-"}
    assert nodes["generate"]["calls"] == 2 and nodes["generate"]["attempts"] == 5
    assert nodes["-"]["cached"] == 1
    data = ledger.to_dict()
    assert json.loads(json.dumps(data)) == data  # JSON-ready
    assert data["totals"]["calls"] == 4 and len(data["calls"]) == 4


def test_unknown_price_makes_total_cost_unknown() -> None:
    ledger = Ledger()
    ledger.record(_record())
    ledger.record(_record(model="my-local-llama", cost_usd=None))
    assert ledger.cost_usd is None
    failed = Ledger()
    failed.record(_record())
    failed.record(_record(ok=False, cost_usd=None, tokens_in=0, tokens_out=0, error="timeout"))
    assert failed.cost_usd == pytest.approx(0.001)  # a failed call bills nothing


def test_ledger_is_thread_safe() -> None:
    ledger = Ledger()

    def work() -> None:
        for _ in range(500):
            ledger.record(_record(tokens_in=1, tokens_out=1))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledger.calls == 4000 and ledger.tokens == 8000


def test_budget_check_names_each_limit(fake_clock: FakeClock) -> None:
    budget = Budget(max_steps=5, max_tokens=1000, max_seconds=30, max_cost_usd=0.01)
    ledger = Ledger()
    started = fake_clock()
    assert budget.check(ledger, 0, started, fake_clock) is None
    assert budget.check(ledger, 5, started, fake_clock) == "steps"
    ledger.record(_record(tokens_in=900, tokens_out=100, cost_usd=0.0))
    assert budget.check(ledger, 1, started, fake_clock) == "tokens"
    cost_only = Ledger()
    cost_only.record(_record(tokens_in=1, tokens_out=1, cost_usd=0.02))
    assert budget.check(cost_only, 1, started, fake_clock) == "cost"
    fake_clock.advance(31)
    assert budget.check(Ledger(), 1, started, fake_clock) == "seconds"


def test_unlimited_budget_never_trips(fake_clock: FakeClock) -> None:
    budget = Budget(max_steps=None, max_tokens=None, max_seconds=None, max_cost_usd=None)
    ledger = Ledger()
    ledger.record(_record(tokens_in=10**9))
    fake_clock.advance(10**6)
    assert budget.check(ledger, 10**6, 0.0, fake_clock) is None


def test_enforce_raises_a_typed_catchable_error(fake_clock: FakeClock) -> None:
    budget = Budget(max_steps=3)
    budget.enforce(Ledger(), 2, fake_clock(), fake_clock)
    with pytest.raises(BudgetExceededError) as info:
        budget.enforce(Ledger(), 3, fake_clock(), fake_clock)
    assert info.value.limit == "steps" and info.value.used == 3 and info.value.allowed == 3


def test_budget_from_settings() -> None:
    budget = Budget.from_settings(BudgetSettings(max_steps=7, max_tokens=None, max_seconds=9.0,
                                                 max_cost_usd=0.5))
    assert budget == Budget(max_steps=7, max_tokens=None, max_seconds=9.0, max_cost_usd=0.5)


def test_price_table() -> None:
    assert price_for("gpt-4o-mini") == (0.15, 0.60)
    assert price_for("gpt-4o-2024-08-06") == price_for("gpt-4o")  # dated snapshot
    assert price_for("openai/gpt-4.1-mini") == price_for("gpt-4.1-mini")
    assert price_for("gpt-4.1-mini") != price_for("gpt-4.1")
    assert price_for("my-local-llama") is None
    assert cost_usd("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert cost_usd("text-embedding-3-small", 500_000, 0) == pytest.approx(0.01)
    assert cost_usd("unknown-model", 10, 10) is None


def test_track_collects_a_runs_calls_across_threads(gateway: LLMGateway) -> None:
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    chat = gateway.chat_model()
    chat.invoke("before")
    with track(Ledger()) as run, track(Ledger()) as inner:
        chat.invoke("during")
        context = contextvars.copy_context()
        with ThreadPoolExecutor(1) as pool:
            pool.submit(context.run, chat.invoke, "in a thread").result()
        assert active_ledgers() == (run, inner)
    chat.invoke("after")
    assert gateway.ledger.calls == 4
    assert run.calls == 2 and inner.calls == 2
    assert active_ledgers() == ()
    assert Budget(max_steps=None, max_tokens=run.tokens).check(run, 0, 0.0) == "tokens"
