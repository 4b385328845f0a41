"""Bad queries (issue 13, suite part 4, query side): empty, blank, control-character-only,
100 KB, NUL, terminal escapes, bytes that are not UTF-8, an unknown tenant and bad filters on
`ragloom ask`/`search`, the assistant graph and the HTTP server. Each gets a proper answer or
one typed error; nothing crashes, hangs or answers 500, and the next query works. The run with
real processes and the openai engine is `benchmarks/reliability.py --parts bad_queries`."""

from __future__ import annotations

import pytest

from tests.reliability.bad_queries import BadQueryReport, Outcome, run_bad_queries

GRAPH = "graph invoke (extractive)"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> BadQueryReport:
    return run_bad_queries(tmp_path_factory.mktemp("bad-queries"))


def test_cli_and_server_give_an_answer_or_one_typed_error(report: BadQueryReport) -> None:
    assert [f for f in report.failures() if not f.startswith(GRAPH)] == []
    violations = report.violations()
    assert violations["tracebacks"] == violations["server_5xx"] == violations["hung"] == 0
    assert violations["escape_leaked"] == violations["next_query_failed"] == 0
    surfaces = {o.surface for o in report.outcomes}
    assert {"cli ask", "cli search", GRAPH, "server /v1/ask", "server /v1/chat/completions",
            "server /v1/ask/stream"} <= surfaces
    codes = {(o.surface, o.case): o.code for o in report.outcomes}
    assert codes["cli ask", "empty"] == codes["cli search", "only_controls"] == "invalid_query"
    assert codes["cli search", "filter [/x]"] == codes["cli search", "filter foo:bar"] == "config"
    assert codes["server /v1/ask", "100kb"] == "invalid_request"
    assert report.next_query_ok == report.next_query_checks == 3


def test_the_graph_never_crashes_on_a_bad_question(report: BadQueryReport) -> None:
    graph = [o for o in report.outcomes if o.surface == GRAPH]
    assert len(graph) == 9 and all(o.status in ("answered", "declined") for o in graph)


def test_the_graph_declines_a_question_of_control_characters(report: BadQueryReport) -> None:
    assert [f for f in report.failures() if f.startswith(GRAPH)] == []


def test_the_checks_catch_what_they_look_for() -> None:
    report = BadQueryReport()
    report.add(Outcome("cli ask", "ansi", "answered", expected="answer", escape_leaked=True))
    report.add(Outcome("server /v1/ask", "nul", "server_error", "500", "answer"))
    report.add(Outcome("cli search", "empty", "answered", expected="invalid_query"))
    report.add(Outcome("server /v1/ask", "x", "typed_error", "invalid_request",
                       "answer|invalid_request"))
    report.next_query_checks = 1
    violations = report.violations()
    assert violations["escape_leaked"] == 1 and violations["server_5xx"] == 1
    assert violations["unexpected"] == 3 and violations["next_query_failed"] == 1


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("\x1b[31mred\x1b[0m text", "red text"),  # CSI (SGR)
        ("\x1b]0;title\x07what", "what"),  # OSC, BEL-terminated
        ("\x1b]8;;http://x\x1b\\link", "link"),  # OSC, ST-terminated
        ("a\x00b\x7fc\x85d", "a b c d"),  # NUL, DEL, C1
        ("\x9b2Jx", "x"),  # 8-bit CSI
        ("\x1bcreset", "reset"),  # two-byte escape
        ("\udcffname\udcfe", "\ufffdname\ufffd"),  # argv bytes that were not UTF-8
        ("tab\tand\nnewline kept", "tab\tand\nnewline kept"),
        ("\r\n \x00\x1b[2J\x07 ", ""),
    ],
)
def test_clean_query(text: str, cleaned: str) -> None:
    from ragloom.core.text import clean_query

    assert clean_query(text) == cleaned
