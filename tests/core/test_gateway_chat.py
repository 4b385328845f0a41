"""Acceptance: ChatOpenAI through the gateway against the real local server (real sockets)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.tools import tool

from ragloom.core.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    DeadlineExceededError,
    MalformedResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
)
from ragloom.core.llm import LLMGateway, ResponseCache
from ragloom.core.logging import bind_run
from ragloom.core.settings import LLMSettings, Settings
from ragloom.core.testing import Fault, OpenAICompatibleServer, Reply, ToolCall, make_test_settings
from ragloom.core.usage import UsageTracker
from tests.core.conftest import FakeClock, chat_bodies

Server = OpenAICompatibleServer


@tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


def _gateway(settings: Settings, **llm: Any) -> LLMGateway:
    return LLMGateway(settings.llm.model_copy(update=llm), usage=UsageTracker())


# -- the three kinds of call -------------------------------------------------------------------


def test_plain_call(gateway: LLMGateway, server: Server) -> None:
    server.enqueue(Reply("Paris is the capital.", usage={"prompt_tokens": 11,
                                                         "completion_tokens": 4}))
    reply = gateway.chat_model().invoke("What is the capital of France?")
    assert reply.content == "Paris is the capital."
    [body] = chat_bodies(server)
    assert body["model"] == "gpt-4o-mini" and not body.get("stream")
    assert body["messages"] == [{"role": "user", "content": "What is the capital of France?"}]
    [record] = gateway.usage.recent
    assert (record.attempts, record.tokens_in, record.tokens_out) == (1, 11, 4)
    assert record.cost_usd == pytest.approx((11 * 0.15 + 4 * 0.60) / 1e6)
    assert record.ok and record.kind == "chat" and record.latency_ms > 0


def test_streamed_call_yields_tokens_and_usage(
    gateway: LLMGateway, server: Server
) -> None:
    server.enqueue("one two three four")
    chunks = list(gateway.chat_model().stream("count"))
    texts = [c.content for c in chunks if c.content]
    assert texts == ["one ", "two ", "three ", "four"]
    [body] = chat_bodies(server)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    [record] = gateway.usage.recent
    assert record.tokens_in == 1 and record.tokens_out == 4 and record.attempts == 1


def test_tool_call(gateway: LLMGateway, server: Server) -> None:
    server.enqueue(Reply(None, tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]))
    chat = gateway.chat_model().bind_tools([get_weather])
    reply = chat.invoke("weather in Oslo?")
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("get_weather", {"city": "Oslo"})]
    [body] = chat_bodies(server)
    assert body["tools"][0]["function"]["name"] == "get_weather"


def test_streamed_tool_call(gateway: LLMGateway, server: Server) -> None:
    server.enqueue(Reply("", tool_calls=[ToolCall("get_weather", {"city": "Lima"})]))
    chat = gateway.chat_model().bind_tools([get_weather])
    total: Any = None
    for chunk in chat.stream("weather in Lima?"):
        total = chunk if total is None else total + chunk
    assert [(c["name"], c["args"]) for c in total.tool_calls] == [("get_weather", {"city": "Lima"})]


async def test_async_call_and_stream(gateway: LLMGateway, server: Server) -> None:
    server.enqueue("async answer", "a b c")
    chat = gateway.chat_model()
    assert (await chat.ainvoke("hi")).content == "async answer"
    texts = [c.content async for c in chat.astream("hi") if c.content]
    assert texts == ["a ", "b ", "c"]
    assert [r.attempts for r in gateway.usage.recent] == [1, 1]


# -- retries and failures ----------------------------------------------------------------------


def test_three_429s_then_success_on_attempt_four(
    gateway: LLMGateway, server: Server
) -> None:
    server.enqueue(*[Fault(429, retry_after=0)] * 3, "finally")
    assert gateway.chat_model().invoke("hi").content == "finally"
    assert len(server.chat_requests()) == 4
    [record] = gateway.usage.recent
    assert record.attempts == 4 and record.ok
    assert gateway.usage.attempts == 4


def test_retry_after_header_is_honoured(settings: Settings, server: Server) -> None:
    clock = FakeClock()
    gateway = LLMGateway(settings.llm, sleep=clock.sleep)
    server.enqueue(Fault(429, retry_after=2), "ok")
    assert gateway.chat_model().invoke("hi").content == "ok"
    assert clock.sleeps == [2.0]


def test_401_fails_at_once_with_a_config_error(
    gateway: LLMGateway, server: Server
) -> None:
    server.enqueue(Fault(401))
    with pytest.raises(AuthenticationError) as info:
        gateway.chat_model().invoke("hi")
    assert isinstance(info.value, ConfigError)
    assert info.value.setting == "llm.api_key"
    assert "RAGLOOM_LLM__API_KEY" in str(info.value)
    assert len(server.chat_requests()) == 1
    assert gateway.usage.recent[0].error == "auth" and not gateway.usage.recent[0].ok


def test_wrong_key_against_a_server_that_checks_it(tmp_path: Path) -> None:
    with OpenAICompatibleServer(api_key="sk-the-right-key") as server:
        settings = make_test_settings(tmp_path, base_url=server.base_url,
                                      llm={"api_key": "sk-the-wrong-key"})
        with pytest.raises(AuthenticationError):
            LLMGateway(settings.llm).chat_model().invoke("hi")
        assert len(server.requests) == 1


def test_server_that_never_answers_fails_within_the_deadline(
    settings: Settings, server: Server
) -> None:
    gateway = _gateway(settings, timeout=0.5, deadline=1.5, max_retries=10)
    server.responder = lambda body: Fault(hang=True)
    started = time.monotonic()
    with pytest.raises((DeadlineExceededError, ProviderTimeoutError)):
        gateway.chat_model().invoke("anyone there?")
    elapsed = time.monotonic() - started
    assert elapsed < 3.0
    assert 1 <= len(server.chat_requests()) <= 4
    assert gateway.usage.recent[0].ok is False


def test_stream_that_never_answers_fails_within_the_deadline(
    settings: Settings, server: Server
) -> None:
    gateway = _gateway(settings, timeout=0.5, deadline=1.5, max_retries=10)
    server.responder = lambda body: Fault(hang=True)
    started = time.monotonic()
    with pytest.raises((DeadlineExceededError, ProviderTimeoutError)):
        list(gateway.chat_model().stream("anyone there?"))
    assert time.monotonic() - started < 3.0


def test_500_then_success(gateway: LLMGateway, server: Server) -> None:
    server.enqueue(Fault(500), "recovered")
    assert gateway.chat_model().invoke("hi").content == "recovered"
    assert len(server.chat_requests()) == 2
    assert gateway.usage.recent[0].attempts == 2


def test_dropped_connection_then_success(gateway: LLMGateway, server: Server) -> None:
    server.enqueue(Fault(drop_connection=True), "back")
    assert gateway.chat_model().invoke("hi").content == "back"
    assert gateway.usage.recent[0].attempts == 2


def test_400_is_not_retried(gateway: LLMGateway, server: Server) -> None:
    server.enqueue(Fault(400), "never")
    with pytest.raises(BadRequestError) as info:
        gateway.chat_model().invoke("hi")
    assert info.value.status == 400
    assert len(server.chat_requests()) == 1


def test_malformed_json_is_a_typed_error(gateway: LLMGateway, server: Server) -> None:
    server.enqueue(Fault(malformed=True), "never")
    with pytest.raises(MalformedResponseError):
        gateway.chat_model().invoke("hi")
    assert len(server.chat_requests()) == 1


def test_persistent_outage_raises_the_last_typed_error(
    settings: Settings, server: Server
) -> None:
    gateway = LLMGateway(settings.llm.model_copy(update={"max_retries": 2}),
                         sleep=FakeClock().sleep)
    server.responder = lambda body: Fault(503)
    with pytest.raises(ProviderUnavailableError) as info:
        gateway.chat_model().invoke("hi")
    assert info.value.status == 503
    assert len(server.chat_requests()) == 3
    assert gateway.usage.recent[0].attempts == 3


def test_stream_retries_before_the_first_chunk(
    gateway: LLMGateway, server: Server
) -> None:
    server.enqueue(Fault(429, retry_after=0), Fault(502), "x y")
    texts = [c.content for c in gateway.chat_model().stream("hi") if c.content]
    assert texts == ["x ", "y"]
    assert gateway.usage.recent[0].attempts == 3


def test_stream_is_not_retried_after_the_first_chunk(
    gateway: LLMGateway, server: Server
) -> None:
    server.enqueue(Reply("alpha beta gamma delta", break_after=2), "never used")
    seen: list[str] = []
    with pytest.raises((ProviderUnavailableError, MalformedResponseError)):
        for chunk in gateway.chat_model().stream("hi"):
            seen.append(str(chunk.content))
    assert "".join(seen).startswith("alpha")
    assert len(server.chat_requests()) == 1  # no retry: tokens were already out
    assert gateway.usage.recent[0].ok is False


async def test_async_retries_and_errors(gateway: LLMGateway, server: Server) -> None:
    server.enqueue(Fault(429, retry_after=0), "async ok", Fault(403))
    chat = gateway.chat_model()
    assert (await chat.ainvoke("hi")).content == "async ok"
    with pytest.raises(AuthenticationError):
        await chat.ainvoke("hi")
    assert [r.attempts for r in gateway.usage.recent] == [2, 1]


def test_no_key_and_no_base_url_is_a_config_error() -> None:
    gateway = LLMGateway(LLMSettings())
    with pytest.raises(ConfigError) as info:
        gateway.chat_model()
    assert info.value.setting == "llm.api_key"


def test_unknown_model_has_unknown_cost(settings: Settings, server: Server) -> None:
    gateway = _gateway(settings, model="my-local-llama")
    gateway.chat_model().invoke("hi")
    assert gateway.usage.recent[0].cost_usd is None
    assert gateway.usage.cost_usd is None
    assert chat_bodies(server)[0]["model"] == "my-local-llama"


def test_rate_limit_without_retries_left(settings: Settings, server: Server) -> None:
    gateway = _gateway(settings, max_retries=0)
    server.enqueue(Fault(429, retry_after=0))
    with pytest.raises(RateLimitError):
        gateway.chat_model().invoke("hi")


# -- usage attribution, cache, LangGraph streaming ---------------------------------------------


def test_node_comes_from_bound_context(gateway: LLMGateway) -> None:
    with bind_run(run_id="r1", node="grade_documents"):
        gateway.chat_model().invoke("hi")
    gateway.chat_model().invoke("hi")
    assert [r.node for r in gateway.usage.recent] == ["grade_documents", None]
    assert set(gateway.usage.by_node()) == {"grade_documents", "-"}


def test_cache_hits_skip_the_server(settings: Settings, server: Server) -> None:
    gateway = _gateway(settings, cache=True)
    chat = gateway.chat_model()
    server.enqueue("cached answer", "other answer")
    assert chat.invoke("same question").content == "cached answer"
    assert chat.invoke("same question").content == "cached answer"
    assert [c.content for c in chat.stream("same question") if c.content] == ["cached answer"]
    assert chat.invoke("different question").content == "other answer"
    assert len(server.chat_requests()) == 2
    records = gateway.usage.recent
    assert [r.cached for r in records] == [False, True, True, False]
    assert [r.attempts for r in records] == [1, 0, 0, 1]
    assert records[1].tokens_in == records[0].tokens_in and records[1].cost_usd == 0.0


async def test_cache_stores_streams_and_serves_async(
    settings: Settings, server: Server, tmp_path: Path
) -> None:
    cache = ResponseCache(tmp_path / "cache.db")
    first = LLMGateway(settings.llm, cache=cache)
    server.enqueue("streamed once")
    assert [c.content for c in first.chat_model().stream("q") if c.content]
    second = LLMGateway(settings.llm, cache=ResponseCache(tmp_path / "cache.db"))
    assert (await second.chat_model().ainvoke("q")).content == "streamed once"
    assert len(server.chat_requests()) == 1
    assert second.usage.recent[0].cached


class _State(TypedDict):
    question: str
    answer: str


def test_langgraph_messages_stream_sees_tokens(
    gateway: LLMGateway, server: Server
) -> None:
    from langgraph.graph import END, START, StateGraph

    chat = gateway.chat_model()

    def generate(state: _State) -> dict[str, str]:
        return {"answer": str(chat.invoke(state["question"]).content)}

    graph = StateGraph(_State)
    graph.add_node("generate", generate)
    graph.add_edge(START, "generate")
    graph.add_edge("generate", END)
    server.enqueue("streamed from a node")
    tokens = [
        (message.content, meta["langgraph_node"])
        for message, meta in graph.compile().stream({"question": "q"}, stream_mode="messages")
        if isinstance(message, AIMessageChunk) and message.content
    ]
    assert [t for t, _ in tokens] == ["streamed ", "from ", "a ", "node"]
    assert {n for _, n in tokens} == {"generate"}
    assert gateway.usage.recent[0].node == "generate"  # from LangGraph's run metadata


def test_cache_path_setting_persists_across_gateways(
    settings: Settings, server: Server, tmp_path: Path
) -> None:
    llm = settings.llm.model_copy(update={"cache": True, "cache_path": tmp_path / "c.db"})
    server.enqueue("persisted")
    assert LLMGateway(llm).chat_model().invoke("q").content == "persisted"
    assert LLMGateway(llm).chat_model().invoke("q").content == "persisted"
    assert len(server.chat_requests()) == 1
    assert (tmp_path / "c.db").exists()


def test_503_retry_after_is_honoured(settings: Settings, server: Server) -> None:
    clock = FakeClock()
    gateway = LLMGateway(settings.llm, sleep=clock.sleep)
    server.enqueue(Fault(503, retry_after=1.5), "ok")
    assert gateway.chat_model().invoke("hi").content == "ok"
    assert clock.sleeps == [1.5]


def test_structured_output_goes_through_the_gateway(gateway: LLMGateway, server: Server) -> None:
    from pydantic import BaseModel

    class Verdict(BaseModel):
        relevant: bool
        reason: str

    server.enqueue(Fault(500), '{"relevant": true, "reason": "mentions asyncio"}')
    verdict = gateway.chat_model().with_structured_output(Verdict).invoke("grade this")
    assert verdict == Verdict(relevant=True, reason="mentions asyncio")
    assert "response_format" in chat_bodies(server)[-1]
    assert gateway.usage.recent[0].attempts == 2


async def test_async_stream_cut_off_is_an_error_not_a_retry(
    gateway: LLMGateway, server: Server
) -> None:
    server.enqueue(Fault(502), Reply("one two three four", break_after=1), "unused")
    seen: list[str] = []
    with pytest.raises(ProviderUnavailableError, match="ended early"):
        async for chunk in gateway.chat_model().astream("hi"):
            seen.append(str(chunk.content))
    assert "one " in seen
    assert len(server.chat_requests()) == 2  # one retry before the first chunk, none after
    assert gateway.usage.recent[0].attempts == 2 and not gateway.usage.recent[0].ok


# -- the lean request path ----------------------------------------------------------------------


def test_lean_requests_match_what_the_sdk_sends(gateway: LLMGateway, server: Server) -> None:
    """The gateway posts ChatOpenAI's JSON body without the SDK's transform: same bytes."""
    from langchain_openai import ChatOpenAI

    plain = ChatOpenAI(model="gpt-4o-mini", base_url=server.base_url, api_key="x",  # type: ignore[arg-type]
                       max_retries=0, temperature=0.0, max_tokens=64, stream_usage=True)
    ours = gateway.chat_model(max_tokens=64)
    for chat in (plain, ours):
        server.enqueue(Reply("", tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]))
        reply = chat.bind_tools([get_weather]).invoke(
            [("system", "be brief"), ("user", "Weather in Oslo?")], stop=["\n\n"])
        assert reply.tool_calls[0]["args"] == {"city": "Oslo"}
    sdk_body, lean_body = chat_bodies(server)
    assert lean_body == sdk_body


async def test_async_lean_path_and_sdk_fallbacks(gateway: LLMGateway, server: Server) -> None:
    from ragloom.core.openai_clients import is_json

    assert is_json({"a": [1, 2.0, None, True, {"b": "c"}]})
    assert not is_json({"a": (1, 2)}) and not is_json({"a": object()})
    server.enqueue(Reply("lean", usage={"prompt_tokens": 3, "completion_tokens": 1}))
    reply = await gateway.chat_model().ainvoke("hi")
    assert reply.content == "lean" and reply.usage_metadata["input_tokens"] == 3
    server.enqueue("streamed reply")  # streams go through the SDK's own create()
    chunks = [c.content async for c in gateway.chat_model().astream("hi") if c.content]
    assert "".join(chunks) == "streamed reply"
    assert [r.attempts for r in gateway.usage.recent] == [1, 1]
