"""Crash and resume (issue 13, suite part 3): real processes killed with SIGKILL mid-turn and
mid-summary; a new process on the same thread resumes cleanly and redoes only what was not
checkpointed. The full-size run is `benchmarks/reliability.py --parts crash_resume`."""

from __future__ import annotations

from pathlib import Path

from tests.reliability.crash_resume import run_chat_crash, run_summarizer_crash


def test_a_chat_turn_killed_mid_answer_resumes_on_the_same_thread(tmp_path: Path) -> None:
    report = run_chat_crash(tmp_path, kill_roles=("answer",))
    assert report.killed_mid_turn == 1, report.problems
    assert report.dangling_after_kill == 1  # the kill left a half-turn: the test has teeth
    assert report.resumed_answered == 1, report.problems
    assert report.dangling_dropped_logged == 1
    assert not any(report.violations().values()), (report.violations(), report.problems)
    assert report.messages_final == 4  # turn 0 and the resumed turn, question and answer each


def test_a_summary_killed_mid_map_redoes_only_unfinished_chunks(tmp_path: Path) -> None:
    # 14 chunks, 4 answered: the 8 held map calls fill every max_concurrency slot, where
    # LangGraph's gate would queue the finished chunks' writes behind them (none was saved)
    report = run_summarizer_crash(tmp_path, chunks=14, finish_before_kill=4)
    assert report.killed, report.problems
    assert report.checkpointed_before_kill == 4  # every answered chunk was saved before the kill
    assert report.map_requests_resume == 14 - 4  # the resume asks only for the other ten
    assert report.redone_finished == 0 and report.asked_twice_on_resume == 0
    assert report.resumed_ok and report.reduce_requests_resume == 1, report.problems
    assert report.llm_calls_reported == 14 + 1  # the saved chunks' usage is kept too
    assert not any(report.violations().values()), (report.violations(), report.problems)
