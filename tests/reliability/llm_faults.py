"""The LLM fault suite (part 1 of the reliability suite), shared by the test and the benchmark.

N assistant asks run with bounded concurrency on the `openai` engine against the local
OpenAI-compatible server, which faults a share of the requests it receives (seeded):
429 with and without Retry-After, 500, 503, replies slower than the client timeout, dropped
connections, bodies that are not JSON, truncated bodies/streams, and replies that are truncated
JSON instead of the fields DSPy asked for. Every ask must end answered or with a typed
`RagloomError` within its deadline; none may hang; every call's attempts must stay within the
retry policy (the gateway's usage records, per ask), and the server's own request log must agree.

    with OpenAICompatibleServer(FaultyLLM(rate=0.3)) as server:
        report = run_fault_suite(server, tmp_path, asks=30)
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragloom.core.documents import Chunk
from ragloom.core.errors import RagloomError
from ragloom.core.testing import Fault, HashingEmbedder, OpenAICompatibleServer, Reply
from ragloom.core.testing.openai_server import ScriptItem
from ragloom.core.usage import CallRecord, UsageTracker
from ragloom.prompts.testing import input_field, reply_for

FAULT_KINDS = (
    "rate_limited_retry_after",
    "rate_limited",
    "server_500",
    "server_503",
    "slow",
    "dropped",
    "malformed_body",
    "truncated",
    "garbled_reply",
)
PARSE_RETRIES = 1  # the roles' own retry after a malformed reply (agents.dspy_modules.roles)

DOCS = [
    Chunk(id="a1" * 12, source="numbers.md", heading_path=("Literals",),
          text="Octal literals start with 0o, as in 0o17. Hex literals start with 0x."),
    Chunk(id="b2" * 12, source="strings.md", heading_path=("Strings",),
          text="Strings are immutable sequences of Unicode code points."),
    Chunk(id="c3" * 12, source="lists.md", heading_path=("Lists",),
          text="Lists are mutable sequences; append adds one item at the end."),
    Chunk(id="d4" * 12, source="ints.md", heading_path=("Integers",),
          text="Integers have unlimited precision; int('17', 8) parses an octal string."),
]


def scripted_values(request: Mapping[str, Any]) -> dict[str, Any]:
    """Good field values for whichever role asked (ChatAdapter fields, see `reply_for`). The
    answer repeats the question, so every prompt of an ask (the grounding check's too) is
    unique to that ask and the server's log can be grouped per call."""
    question = input_field(request, "question")
    return {
        "route": "retrieve", "reason": "needs the documents", "target": "",
        "query": question or "octal literals", "sub_queries": [],
        "relevant": True, "score": 0.9, "grounded": True, "unsupported_claims": [],
        "answer": f"Octal literals start with 0o [c1]. You asked: {question}",
        "summary": "A summary.",
    }


class FaultyLLM:
    """Responder for `OpenAICompatibleServer`: a scripted assistant model that faults `rate`
    of the requests it receives (kinds drawn uniformly from `kinds`, seeded, thread-safe).
    `slow` replies arrive `slow_by` seconds after `timeout`."""

    def __init__(
        self,
        rate: float = 0.3,
        *,
        seed: int = 13,
        kinds: Sequence[str] = FAULT_KINDS,
        timeout: float = 1.0,
        slow_by: float = 0.5,
    ) -> None:
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self.rate = rate
        self.kinds = tuple(kinds)
        self.timeout = timeout
        self.slow_by = slow_by
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self) -> str | None:
        """The fault for the next request, or None."""
        with self._lock:
            self.requests += 1
            if self._rng.random() >= self.rate:
                return None
            kind = self._rng.choice(self.kinds)
            self.injected[kind] += 1
            return kind

    def __call__(self, request: dict[str, Any]) -> ScriptItem:
        values = scripted_values(request)
        reply = reply_for(request, values)
        kind = self.draw()
        if kind is None:
            return reply
        return fault_item(kind, reply, values, self.timeout + self.slow_by)

    @property
    def faulted(self) -> int:
        return sum(self.injected.values())


def fault_item(kind: str, reply: str, values: Mapping[str, Any], slow_delay: float) -> ScriptItem:
    """What the server sends for one fault kind."""
    if kind == "rate_limited_retry_after":
        return Fault(429, retry_after=0.05)
    if kind == "rate_limited":
        return Fault(429)
    if kind == "server_500":
        return Fault(500)
    if kind == "server_503":
        return Fault(503)
    if kind == "slow":
        return Reply(content=reply, delay=slow_delay)
    if kind == "dropped":
        return Fault(drop_connection=True)
    if kind == "malformed_body":
        return Fault(malformed=True)
    if kind == "truncated":
        return Fault(truncate=True, reply=reply)
    if kind == "garbled_reply":  # the model's JSON, cut off: no field DSPy can read
        text = json.dumps(dict(values))
        return Reply(content=text[: len(text) // 2])
    raise ValueError(kind)


@dataclass
class AskOutcome:
    """How one ask ended."""

    index: int
    status: str  # answered | typed_error | untyped_error | hung
    seconds: float
    streamed: bool = False
    code: str | None = None
    caveat: bool = False
    cited: bool = False
    calls: list[CallRecord] = field(default_factory=list)
    error: str | None = None


@dataclass
class SuiteConfig:
    """Knobs of one run (defaults: the fast test; the benchmark raises `asks`)."""

    asks: int = 30
    concurrency: int = 8
    rate: float = 0.3
    seed: int = 13
    timeout: float = 1.0
    max_retries: int = 4
    deadline: float = 8.0
    max_seconds: float = 20.0
    k: int = 3
    stream_every: int = 5  # every Nth ask streams (astream, messages mode): truncated streams

    @property
    def ask_deadline(self) -> float:
        """An ask's bound: its run budget, plus one role call (with its parse retry) that may
        start just before the budget runs out, plus a grading wave."""
        return self.max_seconds + 2 * self.deadline * (1 + PARSE_RETRIES)


def build_store(root: Path) -> Any:
    """The embedded store (real SQLite, hashing embedder) holding DOCS."""
    from ragloom.tools.stores.embedded import EmbeddedStore

    store = EmbeddedStore(root / "store.db", HashingEmbedder(dimensions=256))
    store.upsert(DOCS)
    return store


def suite_settings(base_url: str, root: Path, config: SuiteConfig) -> Any:
    from ragloom.core.testing import make_test_settings

    return make_test_settings(
        root, base_url=base_url,
        llm={"timeout": config.timeout, "max_retries": config.max_retries,
             "deadline": config.deadline},
        budget={"max_seconds": config.max_seconds, "max_tokens": None},
        retrieval={"k": config.k},
    )


async def _invoke(graph: Any, question: str, thread: str, stream: bool) -> dict[str, Any]:
    config = {"configurable": {"thread_id": thread}}
    if not stream:
        return dict(await graph.ainvoke({"question": question}, config))
    final: dict[str, Any] = {}
    async for mode, chunk in graph.astream({"question": question}, config,
                                           stream_mode=["messages", "values"]):
        if mode == "values":
            final = dict(chunk)
    return final


async def run_asks(graph: Any, config: SuiteConfig) -> list[AskOutcome]:
    """All asks, `config.concurrency` at a time; each watched by a timeout of twice its
    deadline (an ask still running then counts as hung)."""
    gate = asyncio.Semaphore(config.concurrency)
    watchdog = 2 * config.ask_deadline

    async def one(i: int) -> AskOutcome:
        async with gate:
            question = f"How do I write octal literals? (ask {i})"
            stream = bool(config.stream_every) and i % config.stream_every == 0
            started = time.monotonic()
            tracker = UsageTracker(keep_recent=100_000)
            with tracker.scope():
                try:
                    out = await asyncio.wait_for(
                        _invoke(graph, question, f"ask-{i}", stream), watchdog)
                except TimeoutError:
                    outcome = AskOutcome(i, "hung", 0.0)
                except RagloomError as exc:
                    outcome = AskOutcome(i, "typed_error", 0.0, code=exc.code, error=str(exc))
                except Exception as exc:  # counted: the suite requires none
                    outcome = AskOutcome(i, "untyped_error", 0.0,
                                         error=f"{type(exc).__name__}: {exc}")
                else:
                    outcome = AskOutcome(i, "answered", 0.0, caveat=bool(out.get("caveat")),
                                         cited=bool(out.get("citations")))
            outcome.seconds = time.monotonic() - started
            outcome.streamed = stream
            outcome.calls = list(tracker.recent)
            return outcome

    return list(await asyncio.gather(*(one(i) for i in range(config.asks))))


_ASK = re.compile(r"\(ask (\d+)\)")


def _ask_of(body: Mapping[str, Any] | None) -> int | None:
    """Which ask a recorded request belongs to (every prompt carries `(ask N)`)."""
    found = _ASK.search(json.dumps((body or {}).get("messages")))
    return int(found.group(1)) if found else None


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _events(log_text: str) -> list[dict[str, Any]]:
    events = []
    for line in log_text.splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def summarize(
    outcomes: Sequence[AskOutcome],
    server: OpenAICompatibleServer,
    faulty: FaultyLLM,
    config: SuiteConfig,
    log_text: str,
    wall_s: float,
) -> dict[str, Any]:
    """The figures of one run, and `violations` (must all be zero)."""
    statuses = Counter(o.status for o in outcomes)
    records = [r for o in outcomes for r in o.calls]
    max_attempts = 1 + config.max_retries
    over_policy = [r for r in records if r.attempts > max_attempts]
    chat = server.chat_requests()
    per_ask = Counter(_ask_of(r.json) for r in chat)
    answered_asks = [o for o in outcomes if o.status == "answered"]
    # answered asks: every request the server saw is an attempt in the usage records; an attempt
    # can time out before the (busy) server accepts it, so the converse is only counted
    unledgered = sum(max(0, per_ask[o.index] - sum(r.attempts for r in o.calls))
                     for o in answered_asks)
    unreceived = sum(max(0, sum(r.attempts for r in o.calls) - per_ask[o.index])
                     for o in answered_asks)
    cancelled = sum(max(0, per_ask[o.index] - sum(r.attempts for r in o.calls))
                    for o in outcomes if o.status != "answered")
    per_prompt = Counter(
        json.dumps([(r.json or {}).get("messages"), bool((r.json or {}).get("stream"))],
                   sort_keys=True)
        for r in chat
    )
    events = _events(log_text)
    retry_events = Counter(str(e.get("error")) for e in events if e.get("event") == "retry")
    malformed = Counter(str(e.get("action")) for e in events
                        if e.get("event") == "llm.reply_malformed")
    seconds = [o.seconds for o in outcomes]
    attempts = sum(r.attempts for r in records)
    summary: dict[str, Any] = {
        "asks": len(outcomes),
        "concurrency": config.concurrency,
        "fault_rate": config.rate,
        "answered": statuses["answered"],
        "answered_with_citations": sum(o.cited for o in outcomes),
        "answered_with_caveat": sum(o.caveat for o in outcomes if o.status == "answered"),
        "typed_errors": statuses["typed_error"],
        "typed_error_codes": dict(Counter(o.code for o in outcomes if o.code)),
        "streamed_asks": sum(o.streamed for o in outcomes),
        "streamed_typed_error_codes": dict(Counter(o.code for o in outcomes
                                                   if o.code and o.streamed)),
        "untyped_errors": statuses["untyped_error"],
        "hung": statuses["hung"],
        "over_deadline": sum(o.seconds > config.ask_deadline for o in outcomes),
        "ask_deadline_s": config.ask_deadline,
        "ask_s_p50": round(statistics.median(seconds), 3) if seconds else 0.0,
        "ask_s_p95": round(_percentile(seconds, 0.95), 3),
        "ask_s_max": round(max(seconds, default=0.0), 3),
        "wall_s": round(wall_s, 2),
        "llm_calls": len(records),
        "llm_calls_failed": sum(not r.ok for r in records),
        "attempts": attempts,
        "retries": attempts - len(records),
        "retry_log_lines": sum(retry_events.values()),
        "retries_by_error": dict(retry_events),
        "max_attempts_per_call": max((r.attempts for r in records), default=0),
        "policy_max_attempts": max_attempts,
        "calls_over_policy": len(over_policy),
        "server_requests": len(chat),
        "requests_of_failed_asks_not_ledgered": cancelled,
        "attempts_never_received": unreceived,
        "faults_injected": dict(faulty.injected),
        "faulted_share": round(faulty.faulted / max(1, faulty.requests), 3),
        "parse_retries": malformed.get("retry", 0),
        "parse_fallbacks": malformed.get("fallback", 0),
        "max_requests_per_prompt": max(per_prompt.values(), default=0),
        "policy_max_requests_per_prompt": max_attempts * (1 + PARSE_RETRIES),
        "untyped_error_samples": [o.error for o in outcomes if o.status == "untyped_error"][:3],
    }
    summary["violations"] = {
        "untyped_errors": summary["untyped_errors"],
        "hung": summary["hung"],
        "over_deadline": summary["over_deadline"],
        "calls_over_policy": summary["calls_over_policy"],
        "requests_not_ledgered": unledgered,
        "requests_of_no_ask": per_ask.get(None, 0),
        "prompts_over_policy": sum(
            n > summary["policy_max_requests_per_prompt"] for n in per_prompt.values()),
    }
    return summary


def run_fault_suite(
    server: OpenAICompatibleServer, faulty: FaultyLLM, root: Path, config: SuiteConfig
) -> dict[str, Any]:
    """Build the assistant over the server, run the asks, return `summarize`'s figures."""
    from langgraph.checkpoint.memory import InMemorySaver

    from ragloom.core.logging import configure_logging
    from ragloom.graphs import build_assistant

    settings = suite_settings(server.base_url, root, config)
    store = build_store(root)
    graph = build_assistant(settings, store=store, checkpointer=InMemorySaver())
    out = io.StringIO()
    configure_logging("INFO", fmt="json", stream=out)
    try:
        server.reset()
        started = time.monotonic()
        outcomes = asyncio.run(run_asks(graph, config))
        wall = time.monotonic() - started
    finally:
        configure_logging("WARNING")
        store.close()
    return summarize(outcomes, server, faulty, config, out.getvalue(), wall)


def format_table(rows: Sequence[tuple[str, Any]], title: str) -> str:
    """A two-column text table."""
    width = max(len(name) for name, _ in rows)
    lines = [title, "-" * len(title)]
    lines += [f"{name.ljust(width)}  {value}" for name, value in rows]
    return "\n".join(lines)


def summary_rows(summary: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The rows `make reliability` prints for part 1."""
    s = summary
    return [
        ("asks (concurrency)", f"{s['asks']} ({s['concurrency']})"),
        ("requests faulted", f"{s['faulted_share']:.1%} of {s['server_requests']}"),
        ("answered", f"{s['answered']} ({s['answered_with_citations']} cited, "
                     f"{s['answered_with_caveat']} with a caveat)"),
        ("typed errors", f"{s['typed_errors']} {s['typed_error_codes']}"),
        ("  of which streamed asks", f"{s['streamed_typed_error_codes']} "
                                     f"(of {s['streamed_asks']} streamed)"),
        ("untyped errors / hung", f"{s['untyped_errors']} / {s['hung']}"),
        ("over deadline", f"{s['over_deadline']} (deadline {s['ask_deadline_s']:g} s)"),
        ("ask seconds p50/p95/max", f"{s['ask_s_p50']} / {s['ask_s_p95']} / {s['ask_s_max']}"),
        ("LLM calls / attempts", f"{s['llm_calls']} / {s['attempts']}"),
        ("retries (log lines)", f"{s['retries']} ({s['retry_log_lines']})"),
        ("max attempts per call", f"{s['max_attempts_per_call']} "
                                  f"(policy {s['policy_max_attempts']})"),
        ("parse retries / fallbacks", f"{s['parse_retries']} / {s['parse_fallbacks']}"),
        ("requests vs usage records", f"{s['server_requests']} vs {s['attempts']} "
         f"({s['requests_of_failed_asks_not_ledgered']} in flight when their ask failed)"),
        ("violations", sum(s["violations"].values())),
    ]
