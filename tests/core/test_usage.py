"""The usage tracker (bounded aggregates, scoping, call cap), per-node metering, prices."""

from __future__ import annotations

import contextvars
import json
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import pytest

from ragloom.core.errors import BudgetExceededError
from ragloom.core.llm import LLMGateway
from ragloom.core.logging import bind_run
from ragloom.core.pricing import cost_usd, price_for
from ragloom.core.testing import Fault, OpenAICompatibleServer
from ragloom.core.usage import (
    CallRecord,
    UsageTracker,
    active_trackers,
    metered,
    summarize_usage,
)


def _record(**kwargs: object) -> CallRecord:
    values: dict[str, object] = {"model": "gpt-4o-mini", "tokens_in": 100, "tokens_out": 50,
                                 "cost_usd": 0.001, "latency_ms": 10.0}
    values.update(kwargs)
    return CallRecord(**values)  # type: ignore[arg-type]


def test_totals_per_node_and_per_run() -> None:
    usage = UsageTracker()
    usage.record(_record(node="retrieve", attempts=1, run_id="r1"))
    usage.record(_record(node="generate", attempts=4, run_id="r1"))
    usage.record(_record(node="generate", attempts=1, tokens_in=10, tokens_out=5, run_id="r2"))
    usage.record(_record(node=None, cached=True, attempts=0, cost_usd=0.0))
    assert usage.calls == 4 and usage.attempts == 6
    assert usage.tokens_in == 310 and usage.tokens_out == 155 and usage.tokens == 465
    assert usage.cost_usd == pytest.approx(0.003)
    nodes = usage.by_node()
    assert set(nodes) == {"retrieve", "generate", "-"}
    assert nodes["generate"]["calls"] == 2 and nodes["generate"]["attempts"] == 5
    assert nodes["-"]["cached"] == 1
    r1 = usage.run("r1")
    assert r1 is not None and (r1.calls, r1.attempts, r1.tokens) == (2, 5, 300)
    assert set(usage.by_run()) == {"r1", "r2"}
    data = usage.to_dict()
    assert json.loads(json.dumps(data)) == data  # JSON-ready
    assert data["totals"]["calls"] == 4 and len(data["recent"]) == 4


def test_unknown_price_makes_total_cost_unknown() -> None:
    usage = UsageTracker()
    usage.record(_record())
    usage.record(_record(model="my-local-llama", cost_usd=None))
    assert usage.cost_usd is None
    failed = UsageTracker()
    failed.record(_record())
    failed.record(_record(ok=False, cost_usd=None, tokens_in=0, tokens_out=0, error="timeout"))
    assert failed.cost_usd == pytest.approx(0.001)  # a failed call bills nothing
    assert failed.totals.failed == 1


def test_tracker_is_thread_safe() -> None:
    usage = UsageTracker()

    def work(worker: int) -> None:
        for index in range(500):
            usage.record(_record(tokens_in=1, tokens_out=1, node=f"n{index % 3}",
                                 run_id=f"w{worker}"))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert usage.calls == 4000 and usage.tokens == 8000
    assert sum(n["calls"] for n in usage.by_node().values()) == 4000
    assert all(r["calls"] == 500 for r in usage.by_run().values())


def test_memory_stays_flat_across_100k_calls() -> None:
    """Aggregates, not a list: 100k more calls (over 10k distinct runs) cost no memory."""
    usage = UsageTracker()
    nodes = ("route", "retrieve", "grade", "answer", "check")

    def record(start: int, count: int) -> None:
        for i in range(start, start + count):
            usage.record(CallRecord(model="gpt-4o-mini", tokens_in=i % 97, tokens_out=3,
                                    cost_usd=1e-6, node=nodes[i % 5], run_id=f"run-{i // 10}"))

    tracemalloc.start()
    try:
        record(0, 5_000)  # warm: every slot, the run table and the recent ring are full
        before = tracemalloc.take_snapshot()
        record(5_000, 100_000)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert usage.calls == 105_000
    assert len(usage.recent) == 64 and len(usage.by_run()) == 256
    assert grown < 16 * 1024, f"tracker grew by {grown} bytes over 100k calls"


def test_admit_caps_calls() -> None:
    seen: list[int] = []
    budget = UsageTracker(max_calls=2, on_call=seen.append)
    budget.admit(_record(kind="dspy"))
    budget.admit(_record(kind="dspy"))
    with pytest.raises(BudgetExceededError) as info:
        budget.admit(_record(kind="dspy"))
    assert info.value.limit == "calls" and info.value.allowed == 2
    assert budget.exhausted and budget.calls == 2 and seen == [1, 2]
    budget.record(_record())  # recording what already happened never raises
    assert budget.calls == 3


def test_scope_collects_a_runs_calls_across_threads(gateway: LLMGateway) -> None:
    chat = gateway.chat_model()
    chat.invoke("before")
    run, inner = UsageTracker(), UsageTracker()
    with run.scope(), inner.scope(), bind_run(run_id="run-7"):
        chat.invoke("during")
        context = contextvars.copy_context()
        with ThreadPoolExecutor(1) as pool:
            pool.submit(context.run, chat.invoke, "in a thread").result()
        assert active_trackers() == (run, inner)
    chat.invoke("after")
    assert gateway.usage.calls == 4
    assert run.calls == 2 and inner.calls == 2
    assert active_trackers() == ()
    assert set(gateway.usage.by_run()) == {"run-7"}
    assert gateway.usage.by_run()["run-7"]["calls"] == 2


def test_retries_are_recorded_as_attempts_of_one_call(
    gateway: LLMGateway, server: OpenAICompatibleServer
) -> None:
    server.enqueue(*[Fault(429, retry_after=0)] * 3, "ok")
    assert gateway.chat_model().invoke("hi").content == "ok"
    assert (gateway.usage.calls, gateway.usage.attempts) == (1, 4)


def test_metered_counts_any_langchain_chat_model() -> None:
    """Not only the gateway's: a plain LangChain chat model inside a node is counted too."""
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    model = FakeListChatModel(responses=["one", "two", "three"])
    model.invoke("outside")  # not inside the node: not counted
    with metered("answer") as record:
        model.invoke("a")
        model.invoke("b")
    assert record["node"] == "answer" and record["llm_calls"] == 2
    assert record["latency_ms"] >= 0 and record["tokens_in"] == 0
    summary = summarize_usage([record, {**record, "node": "check", "llm_calls": 1}],
                              price=lambda tokens_in, tokens_out: 0.5)
    assert summary["llm_calls"] == 3 and summary["cost_usd"] == 0.5
    assert set(summary["nodes"]) == {"answer", "check"}


def test_metered_counts_gateway_tokens(
    gateway: LLMGateway, server: OpenAICompatibleServer
) -> None:
    from ragloom.core.testing import Reply

    server.enqueue(Reply("x", usage={"prompt_tokens": 7, "completion_tokens": 2}))
    with metered("grade") as record:
        gateway.chat_model().invoke("q")
    assert (record["llm_calls"], record["tokens_in"], record["tokens_out"]) == (1, 7, 2)


def test_price_table() -> None:
    assert price_for("gpt-4o-mini") == (0.15, 0.60)
    assert price_for("gpt-4o-2024-08-06") == price_for("gpt-4o")  # dated snapshot
    assert price_for("openai/gpt-4.1-mini") == price_for("gpt-4.1-mini")
    assert price_for("gpt-4.1-mini") != price_for("gpt-4.1")
    assert price_for("my-local-llama") is None
    assert cost_usd("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert cost_usd("text-embedding-3-small", 500_000, 0) == pytest.approx(0.01)
    assert cost_usd("unknown-model", 10, 10) is None
