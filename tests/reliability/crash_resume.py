"""Crash and resume (part 3 of the reliability suite), shared by the test and the benchmark.

Real processes are killed with SIGKILL in the middle of their work, then a new process takes
the same thread over; the LLM is the local OpenAI-compatible server in this process (it counts
every request it receives), threads are kept by the SQLite checkpointer.

- chat: `ragloom ask --thread T` on the openai engine; the server holds one role's request
  (the answer by default) and the process is killed while it waits. The next `ragloom ask` on T
  must answer, the killed turn's question must be gone (never duplicated, never in the next
  prompt), earlier turns must be intact, and `ragloom threads show T` must list them.
- summarizer: `python examples/doc_summarizer.py DOC --thread S` on the openai engine; the
  server answers the map requests of some chunks and holds the others; once the answered ones
  are checkpointed the process is killed. The rerun (same command, same thread) must ask the
  server only for the chunks that were not checkpointed, each once, and reduce once.

    report = run_chat_crash(tmp_path, kill_roles=("answer",))
    report = run_summarizer_crash(tmp_path, chunks=12, finish_before_kill=5)
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragloom.core.testing import OpenAICompatibleServer, Reply
from ragloom.core.testing.openai_server import ScriptItem
from ragloom.core.testing.settings import TEST_API_KEY
from ragloom.prompts.testing import chat_reply, input_field, reply_for, requested_fields
from tests.reliability import ragloom_env

REPO = Path(__file__).resolve().parents[2]
ROLE_FIELDS = {  # the output field that tells which role a request is for
    "route": "route", "rewrite": "query", "grade": "relevant", "answer": "answer",
    "ground": "grounded",
}  # fmt: skip
HOLD_SECONDS = 120.0  # a held request outlives any test: the process is killed first
PROCESS_TIMEOUT = 60.0  # a process that takes longer than this is a hang (counted)

DOC_NUMBERS = (
    "# Numbers\n\nTo write an octal literal, prefix the digits with 0o, as in 0o17. "
    "Hexadecimal literals use the prefix 0x, as in 0xff.\n"
)
DOC_STRINGS = "# Strings\n\nStrings are immutable sequences of Unicode code points.\n"


def role_of(request: Mapping[str, Any]) -> str:
    """Which assistant role a chat request is for ('' when none is recognised)."""
    fields = set(requested_fields(request))
    for role, name in ROLE_FIELDS.items():
        if name in fields:
            return role
    return "summary" if "summary" in fields else ""


# ---------------------------------------------------------------- processes


def subprocess_env(root: Path, base_url: str) -> dict[str, str]:
    """Environment of a ragloom process on the openai engine against the local server, with
    its store and threads under `root` (nothing inherited from the caller's RAGLOOM_*)."""
    return ragloom_env(
        root,
        RAGLOOM_ENGINE="openai",
        RAGLOOM_LLM__BASE_URL=base_url,
        RAGLOOM_LLM__API_KEY=TEST_API_KEY,
        RAGLOOM_LLM__MODEL="test-model",
        RAGLOOM_LLM__TIMEOUT=str(HOLD_SECONDS * 2),  # a held request is waited for, not retried
        RAGLOOM_LLM__MAX_RETRIES="0",
        RAGLOOM_LLM__DEADLINE=str(HOLD_SECONDS * 2),
        RAGLOOM_BUDGET__MAX_SECONDS=str(HOLD_SECONDS * 2),
        RAGLOOM_CHECKPOINTER__KIND="sqlite",
        PYTHONPATH=str(REPO),
    )


@dataclass
class ProcessResult:
    """How one process ended."""

    args: list[str]
    returncode: int | None  # None: it hung (killed at the timeout)
    stdout: str
    stderr: str
    seconds: float
    killed: bool = False  # killed on purpose (SIGKILL at the crash point)

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr


def ragloom_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ragloom", *args]


def run_process(args: list[str], env: Mapping[str, str], cwd: Path) -> ProcessResult:
    """Run to the end (a hang is killed at PROCESS_TIMEOUT and reported with returncode None)."""
    started = time.monotonic()
    try:
        done = subprocess.run(args, env=dict(env), cwd=cwd, capture_output=True, text=True,
                              timeout=PROCESS_TIMEOUT)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        return ProcessResult(args, None, _text(exc.stdout), _text(exc.stderr),
                             time.monotonic() - started)  # fmt: skip
    return ProcessResult(args, done.returncode, done.stdout, done.stderr,
                         time.monotonic() - started)  # fmt: skip


def kill_when(
    args: list[str], env: Mapping[str, str], cwd: Path, reached: threading.Event
) -> ProcessResult:
    """Start the process, SIGKILL it once `reached` is set (the crash point), reap it."""
    started = time.monotonic()
    process = subprocess.Popen(args, env=dict(env), cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = started + PROCESS_TIMEOUT
    while not reached.wait(0.05):
        if process.poll() is not None or time.monotonic() > deadline:
            break
    killed = process.poll() is None and reached.is_set()
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=30)
    return ProcessResult(args, process.returncode, stdout, stderr, time.monotonic() - started,
                         killed=killed)  # fmt: skip


def _text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""


def _events(stderr: str) -> list[dict[str, Any]]:
    found = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found


# ---------------------------------------------------------------- chat turn


class HoldingAssistantLLM:
    """Responder: a scripted assistant model whose answers repeat the question; while armed,
    the first request for `hold_role` sets `reached` and is held (never answered in time)."""

    def __init__(self) -> None:
        self.hold_role: str | None = None
        self.reached = threading.Event()
        self.roles: Counter[str] = Counter()
        self._lock = threading.Lock()

    def arm(self, role: str) -> threading.Event:
        with self._lock:
            self.hold_role = role
            self.reached = threading.Event()
            return self.reached

    def disarm(self) -> None:
        with self._lock:
            self.hold_role = None

    def __call__(self, request: dict[str, Any]) -> ScriptItem:
        role = role_of(request)
        question = input_field(request, "question")
        values: dict[str, Any] = {
            "route": "retrieve", "reason": "needs the documents", "target": "",
            "query": question or "octal literals", "sub_queries": [],
            "relevant": True, "score": 0.9, "grounded": True, "unsupported_claims": [],
            "answer": f"Octal literals start with 0o [c1]. You asked: {question}",
        }  # fmt: skip
        reply = reply_for(request, values)
        with self._lock:
            self.roles[role] += 1
            hold = role == self.hold_role and not self.reached.is_set()
            if hold:
                self.reached.set()
        return Reply(content=reply, delay=HOLD_SECONDS) if hold else reply


def thread_messages(env: Mapping[str, str], thread: str) -> tuple[list[dict[str, Any]], str]:
    """`ragloom threads show THREAD --json` (the real CLI, in this process with `env`): the
    messages, and the output when it failed."""
    from typer.testing import CliRunner

    from ragloom.cli import app

    shown = CliRunner().invoke(app, ["threads", "show", thread, "--json"], env=dict(env))
    if shown.exit_code != 0:
        return [], shown.output
    return json.loads(shown.stdout), ""


def workspace_settings(root: Path, base_url: str) -> Any:
    """The settings `subprocess_env` gives a process, for work done in this one."""
    from ragloom.core.testing import make_test_settings

    return make_test_settings(root, base_url=base_url, llm={
        "timeout": HOLD_SECONDS * 2, "max_retries": 0, "deadline": HOLD_SECONDS * 2})


def prepare_chat(root: Path, base_url: str, thread: str, question: str) -> dict[str, Any]:
    """Ingest two documents and ask one turn on `thread`, in this process (the setup; the
    crash and the resume are separate processes)."""
    import structlog

    from ragloom.core.logging import configure_logging
    from ragloom.runtime import open_wiring
    from ragloom.tools.ingest import ingest_paths

    if not structlog.is_configured():  # structlog's default prints to stdout
        configure_logging("WARNING")

    docs = root / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "numbers.md").write_text(DOC_NUMBERS, encoding="utf-8")
    (docs / "strings.md").write_text(DOC_STRINGS, encoding="utf-8")
    with open_wiring(workspace_settings(root, base_url)) as wiring:
        ingest_paths([docs], wiring.store, root=root, progress=False)
        graph = wiring.assistant(persist=True)
        return dict(graph.invoke({"question": question}, {"configurable": {"thread_id": thread}}))


@dataclass
class ChatCrashReport:
    """Figures of the chat-turn crashes; `violations()` must be empty."""

    rounds: int = 0
    killed_mid_turn: int = 0
    killed_at: Counter[str] = field(default_factory=Counter)
    dangling_after_kill: int = 0  # kills that left the half-turn's question in the checkpoint
    resumed_answered: int = 0
    dangling_dropped_logged: int = 0
    killed_question_in_thread: int = 0
    killed_question_in_next_prompt: int = 0
    duplicate_messages: int = 0
    history_lost: int = 0
    threads_show_failed: int = 0
    tracebacks: int = 0
    hung: int = 0
    messages_final: int = 0
    requests: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def violations(self) -> dict[str, int]:
        return {
            "not_killed_mid_turn": self.rounds - self.killed_mid_turn,
            "resume_not_answered": self.rounds - self.resumed_answered,
            "killed_question_in_thread": self.killed_question_in_thread,
            "killed_question_in_next_prompt": self.killed_question_in_next_prompt,
            "duplicate_messages": self.duplicate_messages,
            "history_lost": self.history_lost,
            "threads_show_failed": self.threads_show_failed,
            "tracebacks": self.tracebacks,
            "hung": self.hung,
        }

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "problems"}
        data["killed_at"] = dict(self.killed_at)
        data["problems"] = self.problems[:20]
        return data


def run_chat_crash(
    root: Path, *, kill_roles: Sequence[str] = ("answer",), thread: str = "crash-chat"
) -> ChatCrashReport:
    """One finished turn, then per role in `kill_roles`: an ask killed while the server holds
    that role's request, then an ask on the same thread that must answer with history intact.
    """
    report = ChatCrashReport()
    started = time.monotonic()
    llm = HoldingAssistantLLM()
    with OpenAICompatibleServer(llm) as server:
        env = subprocess_env(root, server.base_url)
        first_question = "What is an octal literal? (turn 0)"
        first = prepare_chat(root, server.base_url, thread, first_question)
        expected = [first_question] if first_question in first.get("answer", "") else []
        if not expected:
            report.problems.append(f"first ask did not answer: {first.get('answer')!r}")

        def ask(question: str) -> ProcessResult:
            result = run_process(ragloom_command("ask", question, "--thread", thread, "--json"),
                                 env, root)  # fmt: skip
            report.tracebacks += result.traceback
            report.hung += result.returncode is None
            return result

        for number, role in enumerate(kill_roles, 1):
            report.rounds += 1
            killed_question = f"How do I write hex literals? (killed {number} at {role})"
            reached = llm.arm(role)
            killed = kill_when(
                ragloom_command("ask", killed_question, "--thread", thread, "--json"), env, root,
                reached,
            )  # fmt: skip
            llm.disarm()
            if killed.killed:
                report.killed_mid_turn += 1
                report.killed_at[role] += 1
            else:
                report.problems.append(f"round {number}: not killed mid-turn "
                                       f"(rc {killed.returncode}): {killed.stderr[-300:]}")
            report.dangling_after_kill += any(
                killed_question in str(m["content"]) for m in thread_messages(env, thread)[0]
            )  # fmt: skip
            server.reset()
            next_question = f"And strings? (after kill {number})"
            resumed = ask(next_question)
            if resumed.returncode == 0:
                answer = json.loads(resumed.stdout).get("answer", "")
                if next_question in answer:
                    report.resumed_answered += 1
                    expected.append(next_question)
            else:
                report.problems.append(f"round {number}: resume failed: {resumed.stderr[-500:]}")
            report.dangling_dropped_logged += sum(
                e.get("event") == "assistant.unfinished_turn_dropped"
                for e in _events(resumed.stderr)
            )  # fmt: skip
            prompts = json.dumps([r.json for r in server.chat_requests()])
            report.killed_question_in_next_prompt += killed_question in prompts
            messages, shown_err = thread_messages(env, thread)
            if not messages:
                report.threads_show_failed += 1
                report.problems.append(f"threads show failed: {shown_err[-300:]}")
                continue
            contents = [str(m["content"]) for m in messages]
            report.killed_question_in_thread += sum(killed_question in c for c in contents)
            report.duplicate_messages += len(contents) - len(set(contents))
            questions = [str(m["content"]) for m in messages if m["type"] == "human"]
            if questions != expected:
                report.history_lost += 1
                report.problems.append(f"round {number}: questions {questions} != {expected}")
            report.messages_final = len(messages)
        report.requests = sum(llm.roles.values())
    report.seconds = round(time.monotonic() - started, 2)
    return report


# ---------------------------------------------------------------- summarizer


def summary_doc(parts: int, sentences: int = 24) -> str:
    """A Markdown document of `parts` sections whose text names its part (`Part N is about`),
    so the server can tell which chunk a map request is for."""
    sections = []
    for i in range(parts):
        body = " ".join(
            f"Sentence {j} of part {i} explains how values behave in case {j}."
            for j in range(sentences)
        )
        sections.append(f"# Part {i}\n\nPart {i} is about topic {i}. {body}")
    return "\n\n".join(sections)


_PART = re.compile(r"Part (\d+) is about")


def map_reduce_budget(chunks: int) -> int:
    """A token budget that makes `summary_doc(chunks)` a map-reduce: the document (about 320
    tokens a part) is over it, the map summaries (160 tokens predicted each) fit it."""
    return chunks * 200 + 600


class HoldingSummarizerLLM:
    """Responder: map requests answer at once for the parts in `answer_parts` (all when None)
    and are held for the others; reduce requests answer with a fixed overview. Counts map
    requests per part and reduce requests."""

    def __init__(self) -> None:
        self.answer_parts: set[int] | None = None
        self.map_requests: Counter[int] = Counter()
        self.answered: Counter[int] = Counter()
        self.reduce_requests = 0
        self.collapse_requests = 0
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> ScriptItem:
        system = str(request["messages"][0]["content"])
        if "`sections`" in system:
            with self._lock:
                self.reduce_requests += 1
            return chat_reply(summary="## Overview\n\nA document in parts.")
        parts = [int(p) for p in _PART.findall(input_field(request, "text"))]
        if not parts:  # a collapse request: the budget above keeps runs out of the tree
            with self._lock:
                self.collapse_requests += 1
            return chat_reply(summary="Collapsed.")
        part = parts[0]
        with self._lock:
            self.map_requests[part] += 1
            hold = self.answer_parts is not None and part not in self.answer_parts
            if not hold:
                self.answered[part] += 1
        reply = chat_reply(summary=f"Part {part} summarised.")
        return Reply(content=reply, delay=HOLD_SECONDS) if hold else reply


def saved_parts(root: Path, thread: str) -> set[int]:
    """The chunks whose map results the checkpoint holds for `thread` (pending writes of the
    unfinished superstep), read with LangGraph's own API."""
    from ragloom.core.testing import make_test_settings
    from ragloom.graphs.checkpointers import ThreadSqliteSaver
    from ragloom.graphs.summarizer import build_summarizer

    saver = ThreadSqliteSaver.from_path(root / "threads.db")
    try:
        settings = make_test_settings(root)
        graph = build_summarizer(settings, checkpointer=saver)
        snapshot = graph.get_state({"configurable": {"thread_id": thread}})
        found = set()
        for task in snapshot.tasks:
            for partial in (task.result or {}).get("partials") or []:
                if partial.get("level") == 0:
                    found.add(int(partial["index"]))
        return found
    finally:
        saver.conn.close()


@dataclass
class SummarizerCrashReport:
    """Figures of the summarizer crash; `violations()` must be empty."""

    chunks: int = 0
    strategy: str = ""
    answered_before_kill: int = 0
    checkpointed_before_kill: int = 0
    killed: bool = False
    resumed_ok: bool = False
    resumed_chunks: int = 0
    map_requests_before: int = 0
    map_requests_resume: int = 0
    redone_finished: int = 0  # checkpointed chunks asked again: must be 0
    unfinished_not_redone: int = 0  # chunks neither checkpointed nor asked again: must be 0
    asked_twice_on_resume: int = 0
    reduce_requests_resume: int = 0
    llm_calls_reported: int = 0
    tracebacks: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def violations(self) -> dict[str, int]:
        return {
            "not_killed": int(not self.killed),
            "nothing_checkpointed": int(self.checkpointed_before_kill == 0),
            "lost_answered_chunks": self.answered_before_kill - self.checkpointed_before_kill,
            "resume_failed": int(not self.resumed_ok),
            "redone_finished": self.redone_finished,
            "unfinished_not_redone": self.unfinished_not_redone,
            "asked_twice_on_resume": self.asked_twice_on_resume,
            "reduce_not_once": int(self.reduce_requests_resume != 1),
            "tracebacks": self.tracebacks,
        }

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "problems"}
        data["problems"] = self.problems[:20]
        return data


def run_summarizer_crash(
    root: Path,
    *,
    chunks: int = 12,
    finish_before_kill: int = 5,
    thread: str = "crash-summary",
    settle_seconds: float = 1.0,
) -> SummarizerCrashReport:
    """Summarize a `chunks`-part document on a thread; the server answers the map requests of
    the first `finish_before_kill` parts and holds the rest; once those are answered (plus
    `settle_seconds` for their checkpoint writes) the process is killed. Then the same command
    resumes on the same thread with every request answered."""
    report = SummarizerCrashReport()
    started = time.monotonic()
    doc = root / "guide.md"
    doc.write_text(summary_doc(chunks), encoding="utf-8")
    llm = HoldingSummarizerLLM()
    first = set(range(finish_before_kill))
    llm.answer_parts = first
    budget = str(map_reduce_budget(chunks))
    command = [sys.executable, str(REPO / "examples" / "doc_summarizer.py"), str(doc),
               "--thread", thread, "--json", "--budget", budget]  # fmt: skip
    with OpenAICompatibleServer(llm) as server:
        env = subprocess_env(root, server.base_url)
        done = threading.Event()

        def watch() -> None:
            """The crash point: the chunks to finish are answered (or no answer came for 3 s
            while held requests fill the slots), plus `settle_seconds` for their writes."""
            deadline = time.monotonic() + PROCESS_TIMEOUT
            last, changed = -1, time.monotonic()
            while time.monotonic() < deadline:
                with llm._lock:
                    answered = set(llm.answered)
                    waiting = sum(llm.map_requests.values()) - sum(llm.answered.values())
                if len(answered) != last:
                    last, changed = len(answered), time.monotonic()
                stalled = answered and time.monotonic() - changed > 3.0
                if waiting > 0 and (first <= answered or stalled):
                    time.sleep(settle_seconds)
                    done.set()
                    return
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        killed = kill_when(command, env, root, done)
        watcher.join(timeout=1)
        report.killed = killed.killed
        report.tracebacks += killed.traceback and not killed.killed
        if not killed.killed:
            report.problems.append(f"not killed (rc {killed.returncode}): "
                                   f"{killed.stderr[-500:]}")  # fmt: skip
        report.answered_before_kill = len(llm.answered)
        report.map_requests_before = sum(llm.map_requests.values())
        saved = saved_parts(root, thread)
        report.checkpointed_before_kill = len(saved)
        before = Counter(llm.map_requests)
        llm.answer_parts = None
        resumed = run_process(command, env, root)
        report.tracebacks += resumed.traceback
        asked = Counter({p: n - before[p] for p, n in llm.map_requests.items() if n > before[p]})
        report.map_requests_resume = sum(asked.values())
        report.reduce_requests_resume = llm.reduce_requests
        report.redone_finished = sum(1 for p in saved if asked[p])
        report.unfinished_not_redone = sum(
            1 for p in range(chunks) if p not in saved and not asked[p]
        )  # fmt: skip
        report.asked_twice_on_resume = sum(1 for n in asked.values() if n > 1)
        if resumed.returncode == 0:
            result = json.loads(resumed.stdout)
            report.resumed_chunks = int(result.get("chunks") or 0)
            report.strategy = str(result.get("strategy"))
            report.llm_calls_reported = int(result.get("llm_calls") or 0)
            report.resumed_ok = (report.resumed_chunks == chunks and bool(result.get("summary"))
                                 and report.strategy == "map-reduce")
        else:
            report.problems.append(f"resume failed (rc {resumed.returncode}): "
                                   f"{resumed.stderr[-800:]}")  # fmt: skip
    report.chunks = chunks
    report.seconds = round(time.monotonic() - started, 2)
    return report


def summary_rows(chat: Mapping[str, Any], summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Rows of the benchmark's table."""
    return [
        ("chat: rounds killed mid-turn", f"{chat['killed_mid_turn']}/{chat['rounds']} "
                                         f"{chat['killed_at']}"),
        ("chat: kills that left a half-turn in the checkpoint", str(chat["dangling_after_kill"])),
        ("chat: resumed asks answered", str(chat["resumed_answered"])),
        ("chat: dangling turns dropped (logged)", str(chat["dangling_dropped_logged"])),
        ("chat: killed question left in thread / next prompt",
         f"{chat['killed_question_in_thread']} / {chat['killed_question_in_next_prompt']}"),
        ("chat: duplicated messages, history lost", f"{chat['duplicate_messages']}, "
                                                    f"{chat['history_lost']}"),
        ("chat: messages on the thread at the end", str(chat["messages_final"])),
        ("summary: chunks, answered/checkpointed before kill",
         f"{summary['chunks']}, {summary['answered_before_kill']}/"
         f"{summary['checkpointed_before_kill']}"),
        ("summary: map requests before kill / on resume",
         f"{summary['map_requests_before']} / {summary['map_requests_resume']}"),
        ("summary: finished chunks redone, unfinished skipped",
         f"{summary['redone_finished']}, {summary['unfinished_not_redone']}"),
        ("summary: reduce calls on resume", str(summary["reduce_requests_resume"])),
        ("tracebacks, hung", f"{chat['tracebacks'] + summary['tracebacks']}, {chat['hung']}"),
    ]
