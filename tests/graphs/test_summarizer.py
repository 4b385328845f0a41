"""The summarizer graph: strategy choice, structure, concurrency and resumability.

The extractive engine runs in-process; the LLM engine runs E's DSPy map/reduce modules through
the gateway against the local OpenAI-compatible server (real sockets).
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from ragloom.core.errors import ProviderError
from ragloom.core.llm import LLMGateway
from ragloom.core.settings import LLMSettings, load_settings
from ragloom.core.testing.openai_server import Fault, OpenAICompatibleServer
from ragloom.graphs.summarizer import build_summarizer, group_partials, top_level
from ragloom.prompts.testing import chat_reply, input_field

TOPICS = ["lists", "tuples", "dictionaries", "sets", "strings", "files", "classes", "modules"]


def make_doc(parts: int, sentences: int = 24) -> str:
    """A Markdown document of `parts` sections; each sentence names its part."""
    sections = []
    for i in range(parts):
        topic = TOPICS[i % len(TOPICS)]
        body = " ".join(
            f"Sentence {j} of part {i} explains how {topic} behave in case {j}."
            for j in range(sentences)
        )
        sections.append(f"# Part {i}\n\nPart {i} is about {topic}. {body}")
    return "\n\n".join(sections)


def _payload(text: str, length: str = "medium") -> dict[str, Any]:
    return {"documents": [{"source": "guide.md", "title": "Guide", "text": text}], "length": length}


# ---------------------------------------------------------------- extractive engine


@pytest.mark.parametrize(
    ("budget", "strategy"), [(100_000, "stuff"), (8_000, "map-reduce"), (300, "tree")]
)
def test_strategy_follows_the_token_budget(budget: int, strategy: str) -> None:
    graph = build_summarizer(token_budget=budget, chunk_tokens=400)
    result = graph.invoke(_payload(make_doc(30)))
    assert result["strategy"] == strategy
    assert result["chunks"] >= 30
    assert result["engine"] == "extractive" and result["llm_calls"] == 0
    assert {"stuff": 0, "map-reduce": 1}.get(strategy, 2) <= result["levels"]
    if strategy == "tree":
        assert result["levels"] >= 2
    assert result["summary"].startswith("## Overview")


def test_summary_is_structured_by_section() -> None:
    result = build_summarizer(token_budget=8_000, chunk_tokens=400).invoke(
        _payload(make_doc(6), "short")
    )
    headings = re.findall(r"^### (.+)$", result["summary"], re.M)
    assert headings == [f"Part {i}" for i in range(6)]
    bullets = re.findall(r"^- (.+)$", result["summary"], re.M)
    assert len(bullets) == 6  # short: one key point per section
    assert all("part" in b.lower() for b in bullets)


async def test_async_and_sync_runs_agree() -> None:
    graph = build_summarizer(token_budget=250, chunk_tokens=300)
    sync = graph.invoke(_payload(make_doc(10)))
    asynchronous = await graph.ainvoke(_payload(make_doc(10)))
    assert sync["summary"] == asynchronous["summary"]
    assert sync["strategy"] == asynchronous["strategy"] == "tree"


def test_paths_load_files_and_folders_and_report_bad_files(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text(make_doc(2), encoding="utf-8")
    (folder / "empty.txt").write_text("   \n", encoding="utf-8")
    (folder / "notes.bin").write_bytes(b"\x00\x01")  # not a document type: not picked up
    single = tmp_path / "b.rst"
    single.write_text("Title\n=====\n\nThe b file says sets hold unique items.\n", encoding="utf-8")
    result = build_summarizer().invoke({"paths": [str(folder), str(single)]})
    assert result["sources"] == ["docs/a.md", str(single.as_posix())]
    assert [e["source"] for e in result["errors"]] == ["docs/empty.txt"]
    assert result["errors"][0]["code"] == "empty_file"
    assert "sets hold unique items" in result["summary"]


def test_nothing_to_summarize_says_so() -> None:
    result = build_summarizer().invoke({"documents": []})
    assert result["chunks"] == 0 and "Nothing to summarize" in result["summary"]


def test_group_partials_cuts_at_budget_and_sections() -> None:
    entries = [
        {"level": 0, "index": i, "heading": "h", "section": f"s{i // 3}", "summary": "x",
         "tokens": 40}
        for i in range(9)
    ]  # fmt: skip
    groups = group_partials(entries, budget=100)
    assert all(sum(e["tokens"] + 5 for e in g) <= 100 for g in groups)
    assert [e["index"] for g in groups for e in g] == list(range(9))
    assert top_level([*entries, {**entries[0], "level": 1}]) == [{**entries[0], "level": 1}]


# ---------------------------------------------------------------- LLM engine (local server)


class ScriptedSummarizerLLM:
    """Answers map requests with a one-line summary naming the part and reduce requests with a
    structured summary; records concurrency and requests per part; can fail a part once."""

    def __init__(self, delay: float = 0.0, fail_part: int | None = None) -> None:
        self.delay = delay
        self.fail_part = fail_part
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.map_requests: Counter[int] = Counter()
        self.reduce_requests = 0

    def __call__(self, request: dict[str, Any]) -> Any:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            time.sleep(self.delay)
            return self._reply(request)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _reply(self, request: dict[str, Any]) -> Any:
        system = str(request["messages"][0]["content"])
        if "`sections`" in system:
            with self.lock:
                self.reduce_requests += 1
            return chat_reply(summary="## Overview\n\nA guide to Python types.")
        parts = [int(p) for p in re.findall(r"Part (\d+) is about", input_field(request, "text"))]
        if not parts:  # a collapse request over partial summaries
            return chat_reply(summary=f"Collapsed {input_field(request, 'heading')}.")
        part = parts[0]
        with self.lock:
            self.map_requests[part] += 1
            first = self.map_requests[part] == 1
        if part == self.fail_part and first:
            return Fault(status=400)
        return chat_reply(summary=f"Sentence 0 of part {part} summarised.")


def _graph(server: OpenAICompatibleServer, **kwargs: Any) -> Any:
    gateway = LLMGateway(LLMSettings(base_url=server.base_url, max_retries=0, model="test-model"))
    return build_summarizer(load_settings(), llm=gateway, chunk_tokens=400, **kwargs)


async def test_llm_map_calls_run_concurrently_within_the_bound() -> None:
    llm = ScriptedSummarizerLLM(delay=0.05)
    with OpenAICompatibleServer(llm) as server:
        graph = _graph(server, max_concurrency=6, token_budget=8_000)
        result = await graph.ainvoke(_payload(make_doc(36)))
    assert result["engine"] == "openai"
    assert result["strategy"] == "map-reduce"
    assert sorted(llm.map_requests) == list(range(36))
    assert set(llm.map_requests.values()) == {1}
    assert 1 < llm.peak <= 6
    assert result["llm_calls"] == 36 + 1 and result["tokens"] > 0
    assert result["summary"].startswith("## Overview")


async def test_llm_stuff_is_one_call_and_tree_collapses() -> None:
    with OpenAICompatibleServer(ScriptedSummarizerLLM()) as server:
        stuff = await _graph(server, token_budget=100_000).ainvoke(_payload(make_doc(4)))
        tree = await _graph(server, token_budget=120).ainvoke(_payload(make_doc(12)))
        reduce_bodies = [
            r.json for r in server.chat_requests() if "`sections`" in str(r.json["messages"][0])
        ]
    assert (stuff["strategy"], stuff["llm_calls"]) == ("stuff", 1)
    assert tree["strategy"] == "tree" and tree["levels"] >= 2
    assert tree["llm_calls"] > 12 + 1  # map calls, collapse calls, one reduce
    assert "Collapsed" in input_field(reduce_bodies[-1], "sections")


def _saver(kind: str, tmp_path: Path) -> Any:
    if kind == "memory":
        return InMemorySaver()
    from ragloom.graphs.checkpointers import ThreadSqliteSaver

    return ThreadSqliteSaver.from_path(tmp_path / "threads.db")


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
@pytest.mark.parametrize("saver", ["memory", "sqlite"])
async def test_a_failed_run_resumes_and_redoes_only_unfinished_chunks(
    saver: str, tmp_path: Path
) -> None:
    llm = ScriptedSummarizerLLM(delay=0.02, fail_part=5)
    config = {"configurable": {"thread_id": "resume-1"}}
    with OpenAICompatibleServer(llm) as server:
        checkpointer = _saver(saver, tmp_path)
        graph = _graph(server, max_concurrency=3, token_budget=1_000, checkpointer=checkpointer)
        with pytest.raises(ProviderError):
            await graph.ainvoke(_payload(make_doc(12)), config)
        snapshot = await graph.aget_state(config)
        finished = {
            p["index"] for task in snapshot.tasks if task.result
            for p in task.result.get("partials", [])
        }  # fmt: skip
        assert finished and 5 not in finished
        before = Counter(llm.map_requests)
        result = await graph.ainvoke(None, config)
    assert result["chunks"] == 12 and result["strategy"] == "map-reduce"
    for part in finished:  # checkpointed results are not asked for again
        assert llm.map_requests[part] == before[part] == 1
    assert llm.map_requests[5] == 2
    assert set(llm.map_requests) == set(range(12))
    state = await graph.aget_state(config)
    level0 = [p["index"] for p in state.values["partials"] if p["level"] == 0]
    assert sorted(level0) == list(range(12))  # each chunk summarised exactly once
    assert llm.reduce_requests == 1


def test_a_new_run_on_a_finished_thread_starts_clean() -> None:
    graph = build_summarizer(token_budget=500, chunk_tokens=400, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "again"}}
    first = graph.invoke(_payload(make_doc(8)), config)
    second = graph.invoke(_payload(make_doc(3)), config)
    assert (first["chunks"], second["chunks"]) == (8, 3)
    assert second["sources"] == ["guide.md"]
    partials = graph.get_state(config).values["partials"]
    assert sorted(p["index"] for p in partials if p["level"] == 0) == [0, 1, 2]


def test_llm_engine_under_sync_invoke() -> None:
    llm = ScriptedSummarizerLLM()
    with OpenAICompatibleServer(llm) as server:
        result = _graph(server, token_budget=1_000).invoke(_payload(make_doc(6)))
    assert result["strategy"] == "map-reduce" and result["engine"] == "openai"
    assert sorted(llm.map_requests) == list(range(6)) and llm.reduce_requests == 1
    assert result["llm_calls"] == 7
