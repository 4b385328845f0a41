"""The assistant on the `openai` engine: DSPy roles through the gateway against a real local
OpenAI-compatible server, scripted per role."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langchain_core.messages import AIMessageChunk

from ragloom.core.settings import BudgetSettings
from ragloom.core.testing import OpenAICompatibleServer, make_test_settings
from ragloom.graphs.assistant import build_assistant
from tests.graphs.fakes import ListStore, sample_chunks
from tests.graphs.llm_script import AssistantLLM

CONFIG = {"configurable": {"thread_id": "t"}}


def _assistant(server: OpenAICompatibleServer, tmp_path: Path, **settings_overrides):
    settings = make_test_settings(tmp_path, base_url=server.base_url)
    if settings_overrides:
        settings = settings.model_copy(update=settings_overrides)
    return build_assistant(settings, store=ListStore(sample_chunks()))


def test_answers_with_citations_and_usage(tmp_path: Path) -> None:
    llm = AssistantLLM()
    with OpenAICompatibleServer(llm) as server:
        out = _assistant(server, tmp_path).invoke({"question": "How do I write octal?"}, CONFIG)
    assert out["engine"] == "openai"
    assert out["answer"].startswith("Octal literals start with 0o")
    assert [c["source"] for c in out["citations"]] == ["a.md"]
    usage = out["usage"]
    assert usage["llm_calls"] == sum(llm.calls.values()) == len(server.chat_requests())
    assert usage["tokens_in"] > 0
    # happy path: route beside the first query, the answer beside grading, then the check
    assert usage["nodes"]["route"]["llm_calls"] == 2
    grading = usage["nodes"]["grade_documents"]["llm_calls"]
    assert grading == llm.calls["grader"] + llm.calls["answerer"]
    assert "generate_answer" not in usage["nodes"]
    assert llm.calls["answerer"] == 1 and usage["nodes"]["check_grounding"]["llm_calls"] == 1


def test_corrective_loop_when_grader_rejects_everything(tmp_path: Path) -> None:
    queries = ["lists tuples", "octal literals"]
    llm = AssistantLLM(
        queries=lambda i: queries[min(i, 1)],
        relevant=lambda i, passage: "Octal" in passage,
    )
    with OpenAICompatibleServer(llm) as server:
        out = _assistant(server, tmp_path).invoke({"question": "octal?"}, CONFIG)
    assert llm.calls["rewriter"] == 2  # first query found nothing relevant: rewritten once
    assert out["citations"] and out["caveat"] is None


def test_stops_on_token_budget_with_caveat(tmp_path: Path) -> None:
    llm = AssistantLLM(queries=lambda i: f"octal attempt {i}", relevant=lambda i, p: False)
    budget = BudgetSettings(max_tokens=900, max_rewrites=50)
    with OpenAICompatibleServer(llm) as server:
        out = _assistant(server, tmp_path, budget=budget).invoke({"question": "octal?"}, CONFIG)
    assert "tokens budget" in out["caveat"]
    assert 1 < llm.calls["rewriter"] < 10


def test_stops_on_no_progress(tmp_path: Path) -> None:
    llm = AssistantLLM(queries=lambda i: "octal literals", relevant=lambda i, p: False)
    budget = BudgetSettings(max_rewrites=10)
    with OpenAICompatibleServer(llm) as server:
        out = _assistant(server, tmp_path, budget=budget).invoke({"question": "octal?"}, CONFIG)
    assert "progress" in out["caveat"]
    assert llm.calls["rewriter"] == 2


def test_regenerates_when_grounding_fails(tmp_path: Path) -> None:
    llm = AssistantLLM(grounded=lambda i: i > 0)
    with OpenAICompatibleServer(llm) as server:
        out = _assistant(server, tmp_path).invoke({"question": "octal?"}, CONFIG)
        feedback_prompt = server.chat_requests()[-2].json["messages"][-1]["content"]
    assert llm.calls["answerer"] == 2 and llm.calls["grounding"] == 2
    assert "not supported" in feedback_prompt  # the second draft was told what failed
    assert out["caveat"] is None


def test_tokens_stream_from_inside_dspy_calls(tmp_path: Path) -> None:
    llm = AssistantLLM(answer="Octal literals start with 0o and hex with 0x [c0].")
    with OpenAICompatibleServer(llm) as server:
        graph = _assistant(server, tmp_path)
        tokens, final = [], None
        for mode, chunk in graph.stream(
            {"question": "octal?"}, CONFIG, stream_mode=["messages", "custom"]
        ):
            if mode == "messages" and isinstance(chunk[0], AIMessageChunk):
                tokens.append(chunk[0].content)
            elif mode == "custom":
                final = chunk
        streamed = [r for r in server.chat_requests() if (r.json or {}).get("stream")]
    assert len([t for t in tokens if t]) > 5  # many pieces, not one blob
    assert streamed  # the provider was asked to stream
    assert final is not None and final["event"] == "final" and final["citations"]
    text = "".join(tokens)
    assert not any("[[" in t or "##" in t or "[c" in t for t in tokens)  # no wire format, labels
    assert text.strip() == final["answer"] == "Octal literals start with 0o and hex with 0x [1]."


def test_only_answer_tokens_stream_with_final_citation_numbers(tmp_path: Path) -> None:
    answer = "Octal literals start with 0o [c2]. Hex uses 0x [c1, c2]."
    llm = AssistantLLM(answer=answer, queries=lambda i: "octal literals lists tuples")
    with OpenAICompatibleServer(llm) as server:
        graph = _assistant(server, tmp_path)
        pieces = [
            (chunk[0].content, chunk[1]["langgraph_node"])
            for mode, chunk in graph.stream(
                {"question": "octal and hex?"}, CONFIG, stream_mode=["messages"]
            )
            if isinstance(chunk[0], AIMessageChunk)
        ]
        final = graph.get_state(CONFIG).values["messages"][-1]
    assert {node for _, node in pieces} == {"grade_documents"}  # the answer written beside grading
    assert len(pieces) > 5  # streamed, not one blob; router/grader/checker tokens never stream
    streamed = "".join(text for text, _ in pieces)
    assert streamed.strip() == final.content
    assert "[1]" in streamed and "[2]" in streamed and "[c" not in streamed


@pytest.mark.asyncio
async def test_async_stream_and_concurrent_threads(tmp_path: Path) -> None:
    llm = AssistantLLM()
    with OpenAICompatibleServer(llm) as server:
        graph = _assistant(server, tmp_path)
        results = await asyncio.gather(
            *(graph.ainvoke({"question": f"octal {i}?"}, {"configurable": {"thread_id": f"c{i}"}})
              for i in range(8))
        )
        nodes = [
            next(iter(update))
            async for update in graph.astream({"question": "octal?"}, CONFIG, stream_mode="updates")
        ]
    assert all(r["citations"] for r in results)
    assert nodes[0] == "start_turn" and nodes[-1] == "finalize"


def test_logs_carry_run_thread_node_and_usage(tmp_path: Path) -> None:
    import io
    import json

    from ragloom.core.logging import configure_logging

    out = io.StringIO()
    configure_logging("INFO", fmt="json", stream=out)
    try:
        with OpenAICompatibleServer(AssistantLLM()) as server:
            _assistant(server, tmp_path).invoke(
                {"question": "octal?"}, {"configurable": {"thread_id": "log-thread"}}
            )
    finally:
        configure_logging("WARNING")
    events = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    calls = [e for e in events if e["event"] == "llm.call"]
    answer = next(e for e in events if e["event"] == "assistant.answer")
    assert {c["node"] for c in calls} >= {"route", "grade_documents", "check_grounding"}
    assert all(c["thread_id"] == "log-thread" and c["run_id"] == answer["run_id"] for c in calls)
    assert all({"attempt", "latency_ms", "tokens_in", "tokens_out"} <= set(c) for c in calls)
    assert answer["engine"] == "openai" and answer["node"] == "finalize"


def test_any_langchain_chat_model_can_drive_the_roles(tmp_path: Path) -> None:
    from langchain_openai import ChatOpenAI

    llm = AssistantLLM()
    with OpenAICompatibleServer(llm) as server:
        chat = ChatOpenAI(model="plain-model", base_url=server.base_url, api_key="k")
        settings = make_test_settings(tmp_path)  # no base URL: the engine comes from `llm`
        graph = build_assistant(settings, store=ListStore(sample_chunks()), llm=chat)
        out = graph.invoke({"question": "octal?"}, CONFIG)
    assert out["engine"] == "openai" and out["citations"]
    assert {r.json["model"] for r in server.chat_requests()} == {"plain-model"}


def test_a_wrong_llm_is_a_config_error(tmp_path: Path) -> None:
    from ragloom.core.errors import ConfigError

    with pytest.raises(ConfigError, match="llm"):
        build_assistant(make_test_settings(tmp_path), store=ListStore(sample_chunks()),
                        llm="gpt-4o")
