"""Bad queries (the query half of part 4 of the reliability suite), shared by the test and the
benchmark.

Every surface a question reaches — `ragloom ask`, `ragloom search`, the assistant graph and the
HTTP server (`/v1/ask`, `/v1/ask/stream`, `/v1/chat/completions`) — gets the same bad inputs:
empty and blank text, text that is only control characters, a 100 KB question, NUL, ANSI and
OSC terminal escapes, bytes that are not UTF-8, an unknown tenant and bad filter syntax (and, on
the CLI, a document whose text holds terminal escapes, asked and searched). Each
must end in a proper answer or one clear typed error (one `error: [code] ...` line on the CLI,
a 4xx JSON error on the server): never a traceback, a hang or a 500, never an escape sequence
echoed to the terminal, and the next good query must still work.

    report = run_bad_queries(tmp_path)              # in-process: CliRunner, graph, TestClient
    report = run_bad_queries(tmp_path, processes=True)  # plus `ragloom` in real processes
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.reliability import ragloom_env

GOOD_QUESTION = "How do I write an octal literal?"
DOCS = {
    "numbers.md": "# Numbers\n\nTo write an octal literal, prefix the digits with 0o, as in 0o17. "
    "Hexadecimal literals use the prefix 0x, as in 0xff.\n",
    "strings.md": "# Strings\n\nStrings are immutable sequences of Unicode code points.\n",
}
# a document whose text would drive the terminal if printed raw (tenant `escapes` only)
ESCAPE_DOC = ("escapes.md", "# Escapes\n\nThe \x1b[2J\x1b]0;pwned\x07escape character is "
              "written \\x1b in a Python string literal.\n")
ESCAPE_QUESTION = "How is the escape character written in a string literal?"
PROCESS_TIMEOUT = 60.0


@dataclass(frozen=True)
class Case:
    """One bad input: the text, and what every surface must do with it: `answer` (a proper
    answer that cites numbers.md) or the typed error code it must give."""

    name: str
    text: str
    expect: str  # "answer" or an error code ("a|b": either)
    server_expect: str | None = None  # where the server differs (its question size limit)
    argv: bool = True  # can be passed on a command line (argv cannot carry NUL)


CASES = (
    Case("empty", "", "invalid_query", server_expect="invalid_request"),
    Case("blank", " \n\t ", "invalid_query", server_expect="invalid_request"),
    Case("only_controls", "\x00\x1b[2J\x07\x7f", "invalid_query",
         server_expect="invalid_request", argv=False),
    Case("100kb", GOOD_QUESTION + " octal" * 17_000, "answer", server_expect="invalid_request"),
    Case("nul", "How do I write\x00an octal literal?", "answer", argv=False),
    Case("ansi", "\x1b[31mHow do I write an octal literal?\x1b[0m\x1b[2J", "answer"),
    Case("osc_title", "\x1b]0;pwned\x07How do I write an octal literal?", "answer"),
    Case("c1_controls", "How do I write\x9b2J an octal\x85 literal?", "answer"),
    # the CLI gets such bytes from argv and replaces them; JSON may refuse them (422)
    Case("not_utf8", "\udcffHow do I write an octal literal?\udcfe", "answer",
         server_expect="answer|invalid_request"),
)  # fmt: skip
BAD_FILTERS = ("[/x]", "foo:bar", "after:2024-13-45", "path:", "tag:x tag:")


@dataclass
class Outcome:
    """How one surface handled one case."""

    surface: str
    case: str
    status: str  # answered | declined | typed_error | traceback | untyped_error | server_error
    # | hung
    code: str | None = None
    expected: str = ""
    detail: str = ""
    escape_leaked: bool = False  # an ESC/CSI byte reached the terminal output

    @property
    def ok(self) -> bool:
        got = {"answered": "answer", "declined": "declined"}.get(self.status, self.code)
        return got in self.expected.split("|") and not self.escape_leaked


@dataclass
class BadQueryReport:
    """All outcomes; `violations()` must be all zero."""

    outcomes: list[Outcome] = field(default_factory=list)
    next_query_ok: int = 0
    next_query_checks: int = 0
    seconds: float = 0.0

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def violations(self) -> dict[str, int]:
        statuses = Counter(o.status for o in self.outcomes)
        return {
            "unexpected": sum(not o.ok for o in self.outcomes),
            "tracebacks": statuses["traceback"],
            "untyped_errors": statuses["untyped_error"],
            "server_5xx": statuses["server_error"],
            "hung": statuses["hung"],
            "escape_leaked": sum(o.escape_leaked for o in self.outcomes),
            "next_query_failed": self.next_query_checks - self.next_query_ok,
        }

    def failures(self) -> list[str]:
        return [f"{o.surface}/{o.case}: {o.status} {o.code} (expected {o.expected})"
                f"{' escape sequence in the output' if o.escape_leaked else ''} {o.detail}"
                for o in self.outcomes if not o.ok]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        per_surface: dict[str, dict[str, int]] = {}
        for o in self.outcomes:
            row = per_surface.setdefault(o.surface, Counter())
            row[o.status] += 1
            row["as_expected"] += o.ok
        return {
            "cases": len({o.case for o in self.outcomes}),
            "checks": len(self.outcomes),
            "as_expected": sum(o.ok for o in self.outcomes),
            "per_surface": {k: dict(v) for k, v in per_surface.items()},
            "codes": dict(Counter(o.code for o in self.outcomes if o.code)),
            "next_query_ok": f"{self.next_query_ok}/{self.next_query_checks}",
            "failures": self.failures()[:30],
            "violations": self.violations(),
            "seconds": self.seconds,
        }


def _leaks(text: str) -> bool:
    return "\x1b" in text or "\x9b" in text


# ---------------------------------------------------------------- the workspace


def workspace(root: Path) -> dict[str, str]:
    """Documents ingested into an embedded store under `root` (extractive engine, hashing
    embedder); returns the environment a ragloom process needs to use them."""
    import structlog

    from ragloom.core.logging import configure_logging
    from ragloom.core.testing import make_test_settings
    from ragloom.runtime import open_wiring
    from ragloom.tools.ingest import ingest_paths

    if not structlog.is_configured():  # structlog's default prints to stdout
        configure_logging("WARNING")
    docs = root / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    escapes = root / "escapes"
    escapes.mkdir(parents=True, exist_ok=True)
    (escapes / ESCAPE_DOC[0]).write_text(ESCAPE_DOC[1], encoding="utf-8")
    with open_wiring(make_test_settings(root)) as wiring:
        for tenant in (None, "acme"):  # the CLI's default tenant, the server key's tenant
            ingest_paths([docs], wiring.store, root=root, progress=False, tenant=tenant)
        ingest_paths([escapes], wiring.store, root=root, progress=False, tenant="escapes")
    return ragloom_env(root, RAGLOOM_ENGINE="extractive")


# ---------------------------------------------------------------- CLI


def _cli_outcome(
    surface: str, case: str, expected: str, code: int | None, out: str, err: str, exc: Any,
    source: str = "numbers.md",
) -> Outcome:
    """Classify a CLI run: exit 0 with output is an answer; exit 1 with one `error: [code]`
    line on stderr is a typed error; anything else is not."""
    leaked = _leaks(out) or _leaks(err)
    if code is None:
        return Outcome(surface, case, "hung", expected=expected)
    if "Traceback" in err or (exc is not None and not isinstance(exc, SystemExit)):
        from ragloom.core.errors import RagloomError

        if isinstance(exc, RagloomError):  # `ragloom`'s entry point prints it as one line
            return Outcome(surface, case, "typed_error", exc.code, expected, escape_leaked=leaked)
        return Outcome(surface, case, "traceback", expected=expected,
                       detail=(err or repr(exc))[-300:], escape_leaked=leaked)  # fmt: skip
    errors = [line for line in err.splitlines() if line.startswith("error: [")]
    if code != 0:
        if len(errors) == 1 and errors[0].count("\n") == 0:
            return Outcome(surface, case, "typed_error", errors[0][8:].split("]", 1)[0],
                           expected, escape_leaked=leaked)  # fmt: skip
        return Outcome(surface, case, "untyped_error", expected=expected,
                       detail=err[-300:], escape_leaked=leaked)  # fmt: skip
    proper = source in out or "no documents" in (out + err)
    status = "answered" if proper else "untyped_error"
    return Outcome(surface, case, status, expected=expected,
                   detail="" if proper else f"no proper answer: {out[-200:]!r}",
                   escape_leaked=leaked)  # fmt: skip


def _in_process(env: Mapping[str, str]) -> Callable[[list[str]], tuple[int | None, str, str, Any]]:
    from typer.testing import CliRunner

    from ragloom.cli import app

    runner = CliRunner()

    def run(args: list[str]) -> tuple[int | None, str, str, Any]:
        result = runner.invoke(app, args, env=dict(env))
        return result.exit_code, result.stdout, result.stderr, result.exception

    return run


def _processes(env: Mapping[str, str], cwd: Path) -> Callable[[list[str]], tuple[int | None, str,
                                                                                str, Any]]:
    def run(args: list[str]) -> tuple[int | None, str, str, Any]:
        argv = [sys.executable, "-m", "ragloom", *args]
        try:
            done = subprocess.run(
                [os.fsencode(a) for a in argv], env=dict(env), cwd=cwd, capture_output=True,
                timeout=PROCESS_TIMEOUT,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return None, "", "", None
        return (done.returncode, done.stdout.decode("utf-8", "replace"),
                done.stderr.decode("utf-8", "replace"), None)  # fmt: skip

    return run


Runner = Callable[[list[str]], tuple[int | None, str, str, Any]]


def check_cli(
    report: BadQueryReport, runner: Callable[[str | None], Runner], surface: str, *,
    argv_only: bool = False,
) -> None:
    """`ask` and `search` with every case, unknown tenants, bad filters and a document holding
    terminal escapes; then a good ask. `runner(tenant)` runs the CLI with that store tenant."""
    run = runner(None)
    for case in CASES:
        if argv_only and not case.argv:
            continue
        for command in ("ask", "search"):
            code, out, err, exc = run([command, case.text])
            report.add(_cli_outcome(f"{surface} {command}", case.name, case.expect, code, out,
                                    err, exc))  # fmt: skip
    code, out, err, exc = run(["search", GOOD_QUESTION, "--tenant", "nobody"])
    report.add(_cli_outcome(f"{surface} search", "unknown_tenant", "answer", code, out, err, exc))
    code, out, err, exc = runner("nobody")(["ask", GOOD_QUESTION])
    report.add(_cli_outcome(f"{surface} ask", "unknown_tenant", "answer", code, out, err, exc))
    for text in BAD_FILTERS:
        code, out, err, exc = run(["search", GOOD_QUESTION, "--filter", text])
        report.add(_cli_outcome(f"{surface} search", f"filter {text}", "config", code, out, err,
                                exc))  # fmt: skip
    for name, args in (("escapes_in_document", ["ask", ESCAPE_QUESTION]),
                       ("escapes_in_document_streamed", ["ask", ESCAPE_QUESTION, "--stream"]),
                       ("escapes_in_document", ["search", ESCAPE_QUESTION])):
        code, out, err, exc = runner("escapes")(args)  # its escapes must not reach a terminal
        report.add(_cli_outcome(f"{surface} {args[0]}", name, "answer", code, out, err, exc,
                                source="escapes.md"))  # fmt: skip
    code, out, _, _ = run(["ask", GOOD_QUESTION])
    report.next_query_checks += 1
    report.next_query_ok += code == 0 and "numbers.md" in out


# ---------------------------------------------------------------- graph


def check_graph(report: BadQueryReport, root: Path, base_url: str | None = None) -> None:
    """`build_assistant(settings).invoke` on one thread with every case (blank ones must get
    the graph's decline or a typed error), then a good question on the same thread. With
    `base_url` (an OpenAI-compatible server), on the openai engine."""
    from ragloom.core.errors import RagloomError
    from ragloom.core.testing import make_test_settings
    from ragloom.graphs import build_assistant

    engine = "openai" if base_url else "extractive"
    graph = build_assistant(make_test_settings(root, base_url=base_url), persist=True)
    config = {"configurable": {"thread_id": f"bad-queries-{engine}"}}
    surface = f"graph invoke ({engine})"
    for case in CASES:
        expected = case.expect if case.expect == "answer" else "declined"
        try:
            result = graph.invoke({"question": case.text}, config)
        except RagloomError as exc:
            report.add(Outcome(surface, case.name, "typed_error", exc.code,
                               "invalid_query" if expected == "declined" else expected))
            continue
        except Exception as exc:  # counted: the suite requires none
            report.add(Outcome(surface, case.name, "untyped_error", expected=expected,
                               detail=f"{type(exc).__name__}: {str(exc)[:200]}"))  # fmt: skip
            continue
        cited = any(c.get("source", "").endswith("numbers.md") for c in result["citations"])
        if expected == "declined":
            got = "declined" if result.get("route") == "decline" else "answered"
            report.add(Outcome(surface, case.name, got, expected=expected,
                               escape_leaked=_leaks(result["answer"])))  # fmt: skip
        else:
            report.add(Outcome(surface, case.name, "answered" if cited else "untyped_error",
                               expected=expected, escape_leaked=_leaks(result["answer"]),
                               detail="" if cited else repr(result["answer"][:120])))
    result = graph.invoke({"question": GOOD_QUESTION}, config)
    report.next_query_checks += 1
    report.next_query_ok += any(c["source"].endswith("numbers.md") for c in result["citations"])


# ---------------------------------------------------------------- server


def check_server(report: BadQueryReport, root: Path) -> None:
    """`/v1/ask`, `/v1/ask/stream` and `/v1/chat/completions` with every case (TestClient on
    the real app), a key whose tenant has no documents, then a good question."""
    from fastapi.testclient import TestClient

    from ragloom.core.testing import make_test_settings
    from ragloom.server import create_app

    key, empty_key = "key-bad-queries-0123456789abcdef", "key-no-documents-0123456789abcd"
    settings = make_test_settings(root, server={"api_keys": [
        {"key": key, "tenant": "acme"}, {"key": empty_key, "tenant": "nobody"}]})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for case in CASES:
            expected = case.server_expect or case.expect
            for path in ("/v1/ask", "/v1/ask/stream", "/v1/chat/completions"):
                report.add(_server_outcome(client, key, path, case.name, case.text, expected))
        report.add(_server_outcome(client, empty_key, "/v1/ask", "unknown_tenant",
                                   GOOD_QUESTION, "answer"))  # fmt: skip
        final = _server_outcome(client, key, "/v1/ask", "next", GOOD_QUESTION, "answer")
        report.next_query_checks += 1
        report.next_query_ok += final.ok


def _server_outcome(
    client: Any, key: str, path: str, case: str, text: str, expected: str
) -> Outcome:
    if path == "/v1/chat/completions":
        body: dict[str, Any] = {"model": "ragloom-assistant",
                                "messages": [{"role": "user", "content": text}]}
    else:
        body = {"question": text}
    payload = json.dumps(body).encode()  # lone surrogates go as \\udcXX escapes
    response = client.post(path, content=payload, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    surface = f"server {path}"
    if response.status_code >= 500:
        return Outcome(surface, case, "server_error", str(response.status_code), expected)
    if response.status_code >= 400:
        try:
            code = response.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return Outcome(surface, case, "untyped_error", expected=expected,
                           detail=response.text[:200])  # fmt: skip
        return Outcome(surface, case, "typed_error", code, expected)
    text_out = response.text
    if path == "/v1/ask/stream" and "event: error" in text_out:
        return Outcome(surface, case, "typed_error", "stream_error", expected,
                       detail=text_out[-200:])  # fmt: skip
    proper = "numbers.md" in text_out or "no documents" in text_out
    return Outcome(surface, case, "answered" if proper else "untyped_error", expected=expected,
                   detail="" if proper else text_out[:200])  # fmt: skip


# ---------------------------------------------------------------- all of it


def run_bad_queries(root: Path, *, processes: bool = False) -> BadQueryReport:
    """Every case on every surface (CLI in this process; with `processes`, also `ragloom` in
    real processes, with real argv bytes)."""
    report = BadQueryReport()
    started = time.monotonic()
    env = workspace(root)

    def tenant_env(tenant: str | None) -> dict[str, str]:
        return {**env, "RAGLOOM_STORE__TENANT": tenant} if tenant else env

    check_cli(report, lambda tenant: _in_process(tenant_env(tenant)), "cli")
    if processes:
        check_cli(report, lambda tenant: _processes(tenant_env(tenant), root), "process",
                  argv_only=True)  # fmt: skip
    check_graph(report, root)
    if processes:
        from ragloom.core.testing import OpenAICompatibleServer
        from tests.reliability.crash_resume import HoldingAssistantLLM

        with OpenAICompatibleServer(HoldingAssistantLLM()) as server:
            check_graph(report, root, server.base_url)
    check_server(report, root)
    report.seconds = round(time.monotonic() - started, 2)
    return report


def summary_rows(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Rows of the benchmark's table: one per surface, then the totals."""
    rows = []
    for surface, counts in sorted(data["per_surface"].items()):
        total = sum(v for k, v in counts.items() if k != "as_expected")
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k != "as_expected")
        rows.append((surface, f"{counts.get('as_expected', 0)}/{total} as expected ({kinds})"))
    v = data["violations"]
    rows += [
        ("error codes", ", ".join(f"{k} {n}" for k, n in sorted(data["codes"].items()))),
        ("tracebacks, untyped errors, 5xx, hung", f"{v['tracebacks']}, {v['untyped_errors']}, "
                                                  f"{v['server_5xx']}, {v['hung']}"),
        ("escape sequences echoed", str(v["escape_leaked"])),
        ("next good query answered", str(data["next_query_ok"])),
    ]
    return rows
