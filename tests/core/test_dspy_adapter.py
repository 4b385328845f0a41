"""Acceptance: DSPy modules through the gateway's BaseLM adapter, against the real local server."""

from __future__ import annotations

from typing import TypedDict

import dspy
import pytest
from langchain_core.messages import AIMessageChunk

from ragloom.core.errors import AuthenticationError, BadRequestError
from ragloom.core.llm import LLMGateway
from ragloom.core.testing import Fault, OpenAICompatibleServer, Reply, ToolCall
from tests.core.conftest import chat_bodies

Server = OpenAICompatibleServer


def _answer(text: str) -> str:
    """What a model following DSPy's ChatAdapter format replies."""
    return f"[[ ## answer ## ]]\n{text}\n\n[[ ## completed ## ]]"


def test_predict_plain_call(gateway: LLMGateway, server: Server) -> None:
    server.enqueue(_answer("Paris"))
    with dspy.context(lm=gateway.dspy_lm()):
        prediction = dspy.Predict("question -> answer")(question="Capital of France?")
    assert prediction.answer == "Paris"
    [body] = chat_bodies(server)
    assert body["messages"][0]["role"] == "system"
    assert "Capital of France?" in body["messages"][-1]["content"]
    assert body["model"] == "gpt-4o-mini" and body["temperature"] == 0.0
    [record] = gateway.usage.recent
    assert record.attempts == 1 and record.tokens_in > 0 and record.tokens_out > 0


async def test_predict_async_call(gateway: LLMGateway, server: Server) -> None:
    server.enqueue(_answer("Rome"))
    with dspy.context(lm=gateway.dspy_lm()):
        prediction = await dspy.Predict("question -> answer").acall(question="Capital of Italy?")
    assert prediction.answer == "Rome"
    assert len(gateway.usage.recent) == 1


class _State(TypedDict):
    question: str
    answer: str


def test_predict_streams_tokens_in_a_langgraph_node(gateway: LLMGateway, server: Server) -> None:
    from langgraph.graph import END, START, StateGraph

    lm = gateway.dspy_lm()
    predict = dspy.Predict("question -> answer")

    def generate(state: _State) -> dict[str, str]:
        with dspy.context(lm=lm):
            return {"answer": predict(question=state["question"]).answer}

    graph = StateGraph(_State)
    graph.add_node("generate", generate)
    graph.add_edge(START, "generate")
    graph.add_edge("generate", END)
    server.enqueue(_answer("Streamed to the graph"))
    compiled = graph.compile()
    tokens: list[str] = []
    final: dict[str, str] = {}
    for mode, item in compiled.stream({"question": "q"}, stream_mode=["messages", "values"]):
        if mode == "messages":
            message, meta = item
            if isinstance(message, AIMessageChunk) and message.content:
                tokens.append(str(message.content))
                assert meta["langgraph_node"] == "generate"
        else:
            final = item
    assert len(tokens) > 3  # token by token, not one block
    assert "to " in tokens and "".join(tokens).startswith("[[ ## answer ## ]]")
    assert final["answer"] == "Streamed to the graph"
    assert chat_bodies(server)[0]["stream"] is True
    assert gateway.usage.recent[0].node == "generate"


def test_lm_streams_through_its_chat_model(gateway: LLMGateway, server: Server) -> None:
    lm = gateway.dspy_lm()
    server.enqueue("plain words streamed")
    assert [c.content for c in lm.chat.stream("hi") if c.content] == ["plain ", "words ",
                                                                     "streamed"]


class _ToolSignature(dspy.Signature):
    """Answer, calling tools when needed."""

    question: str = dspy.InputField()
    tools: list[dspy.Tool] = dspy.InputField()
    answer: str = dspy.OutputField()
    tool_calls: dspy.ToolCalls = dspy.OutputField()


def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


def test_predict_tool_call(gateway: LLMGateway, server: Server) -> None:
    server.enqueue(Reply(None, tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]))
    adapter = dspy.ChatAdapter(use_native_function_calling=True)
    with dspy.context(lm=gateway.dspy_lm(), adapter=adapter):
        prediction = dspy.Predict(_ToolSignature)(question="Weather in Oslo?",
                                                  tools=[dspy.Tool(get_weather)])
    [call] = prediction.tool_calls.tool_calls
    assert (call.name, call.args) == ("get_weather", {"city": "Oslo"})
    assert call.execute() == "sunny in Oslo"
    [body] = chat_bodies(server)
    assert body["tools"][0]["function"]["name"] == "get_weather"


def test_lm_call_with_tools_passes_them_through(gateway: LLMGateway, server: Server) -> None:
    server.enqueue(Reply("", tool_calls=[ToolCall("get_weather", {"city": "Lima"})]))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    [output] = gateway.dspy_lm()("Weather in Lima?", tools=tools)
    assert output["tool_calls"][0]["function"]["name"] == "get_weather"
    assert chat_bodies(server)[0]["tools"] == tools


def test_dspy_calls_share_retries_and_usage(gateway: LLMGateway, server: Server) -> None:
    server.enqueue(*[Fault(429, retry_after=0)] * 3, _answer("after retries"))
    with dspy.context(lm=gateway.dspy_lm()):
        prediction = dspy.Predict("question -> answer")(question="q")
    assert prediction.answer == "after retries"
    assert len(server.chat_requests()) == 4
    assert gateway.usage.recent[0].attempts == 4


def test_dspy_errors_arrive_typed_and_unretried(gateway: LLMGateway, server: Server) -> None:
    server.enqueue(Fault(401))
    with dspy.context(lm=gateway.dspy_lm()), pytest.raises(AuthenticationError) as info:
        dspy.Predict("question -> answer")(question="q")
    assert info.value.setting == "llm.api_key"
    assert len(server.chat_requests()) == 1
    server.enqueue(Fault(400))
    with dspy.context(lm=gateway.dspy_lm()), pytest.raises(BadRequestError):
        dspy.Predict("question -> answer")(question="q2")
    assert len(server.chat_requests()) == 2


def test_dspy_cache_is_off_and_gateway_cache_applies(
    gateway: LLMGateway, server: Server, settings: object
) -> None:
    server.responder = lambda body: _answer("fresh")
    with dspy.context(lm=gateway.dspy_lm()):
        dspy.Predict("question -> answer")(question="same")
        dspy.Predict("question -> answer")(question="same")
    assert len(server.chat_requests()) == 2  # DSPy's own cache did not answer

    cached = LLMGateway(gateway.settings.model_copy(update={"cache": True}))
    with dspy.context(lm=cached.dspy_lm()):
        dspy.Predict("question -> answer")(question="again")
        dspy.Predict("question -> answer")(question="again")
    assert len(server.chat_requests()) == 3
    assert [r.cached for r in cached.usage.recent] == [False, True]


def test_saved_state_has_no_key_or_client(gateway: LLMGateway) -> None:
    state = gateway.dspy_lm().dump_state()
    assert state["model"] == "gpt-4o-mini"
    assert "chat" not in state and "api_key" not in state
    assert state["cache"] is False


def test_rollout_id_gets_a_fresh_cached_answer(gateway: LLMGateway, server: Server) -> None:
    cached = LLMGateway(gateway.settings.model_copy(update={"cache": True}))
    server.responder = lambda body: _answer(f"reply {len(server.chat_requests())}")
    lm = cached.dspy_lm()
    with dspy.context(lm=lm):
        first = dspy.Predict("question -> answer")(question="q").answer
        again = dspy.Predict("question -> answer")(question="q").answer
    with dspy.context(lm=lm.copy(rollout_id=1)):
        rollout = dspy.Predict("question -> answer")(question="q").answer
    assert first == again
    assert rollout != first
    assert len(server.chat_requests()) == 2


async def test_acall_streams_tokens_in_an_async_langgraph_node(
    gateway: LLMGateway, server: Server
) -> None:
    from langgraph.graph import END, START, StateGraph

    lm = gateway.dspy_lm()
    predict = dspy.Predict("question -> answer")

    async def generate(state: _State) -> dict[str, str]:
        with dspy.context(lm=lm):
            return {"answer": (await predict.acall(question=state["question"])).answer}

    graph = StateGraph(_State)
    graph.add_node("generate", generate)
    graph.add_edge(START, "generate")
    graph.add_edge("generate", END)
    server.enqueue(_answer("async streamed answer"))
    tokens = [
        str(message.content)
        async for message, _ in graph.compile().astream({"question": "q"}, stream_mode="messages")
        if isinstance(message, AIMessageChunk) and message.content
    ]
    assert "streamed " in tokens and len(tokens) > 3
    assert gateway.usage.recent[0].node == "generate"


def test_caching_adapter_formats_like_chat_adapter_and_builds_the_system_message_once() -> None:
    from ragloom.core.dspy_lm import CachingChatAdapter

    class Counting(CachingChatAdapter):
        built = 0

        def format_field_description(self, signature: type[dspy.Signature]) -> str:
            Counting.built += 1
            return super().format_field_description(signature)

    adapter, plain = Counting(), dspy.ChatAdapter()
    qa = dspy.Signature("question -> answer")
    other = qa.with_instructions("Answer in one word.")
    for signature, question in ((qa, "a?"), (qa, "b?"), (other, "c?"), (qa, "d?")):
        inputs = {"question": question}
        assert adapter.format(signature, [], inputs) == plain.format(signature, [], inputs)
    assert Counting.built == 2  # once per signature, not once per call


def test_direct_path_inside_a_node_is_metered_and_attributed(
    gateway: LLMGateway, server: Server
) -> None:
    """Under plain invoke no LangChain listener needs the call: it skips the chat model, and
    the node's meter and the gateway's usage still see it."""
    from langgraph.graph import END, START, StateGraph

    from ragloom.core.usage import metered

    lm = gateway.dspy_lm()
    predict = dspy.Predict("question -> answer")
    records: list[dict[str, object]] = []
    seen_by_chat: list[object] = []
    lm.chat = _Spy(lm.chat, seen_by_chat)

    def generate(state: _State) -> dict[str, str]:
        with metered("generate") as record, dspy.context(lm=lm):
            answer = predict(question=state["question"]).answer
        records.append(record)
        return {"answer": answer}

    graph = StateGraph(_State)
    graph.add_node("generate", generate)
    graph.add_edge(START, "generate")
    graph.add_edge("generate", END)
    server.enqueue(Reply(_answer("direct"), usage={"prompt_tokens": 9, "completion_tokens": 2}))
    assert graph.compile().invoke({"question": "q"})["answer"] == "direct"
    assert seen_by_chat == []  # not through LangChain
    assert (records[0]["llm_calls"], records[0]["tokens_in"], records[0]["tokens_out"]) == (1, 9, 2)
    [record] = gateway.usage.recent
    assert record.node == "generate" and record.attempts == 1


class _Spy:
    """Records calls that reach the chat model, then forwards them."""

    def __init__(self, inner: object, seen: list[object]) -> None:
        self._inner, self._seen = inner, seen

    def invoke(self, *args: object, **kwargs: object) -> object:
        self._seen.append(args)
        return self._inner.invoke(*args, **kwargs)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


async def test_async_direct_path_retries_and_types_errors(
    gateway: LLMGateway, server: Server
) -> None:
    """The aiohttp direct client fails the way the SDK does: same retries, same typed errors."""
    from ragloom.core.errors import ProviderUnavailableError

    predict = dspy.Predict("question -> answer")
    server.enqueue(*[Fault(429, retry_after=0)] * 3, _answer("after retries"))
    with dspy.context(lm=gateway.dspy_lm()):
        assert (await predict.acall(question="q")).answer == "after retries"
    assert gateway.usage.recent[-1].attempts == 4 and len(server.chat_requests()) == 4
    server.enqueue(Fault(401))
    with dspy.context(lm=gateway.dspy_lm()), pytest.raises(AuthenticationError) as info:
        await predict.acall(question="q2")
    assert info.value.setting == "llm.api_key" and len(server.chat_requests()) == 5
    server.enqueue(Fault(400))
    with dspy.context(lm=gateway.dspy_lm()), pytest.raises(BadRequestError):
        await predict.acall(question="q3")
    assert gateway.usage.recent[-1].error == "bad_request"
    assert type(gateway.direct_clients.get()).__name__ == "AioChatClient"

    closed = LLMGateway(gateway.settings.model_copy(
        update={"base_url": "http://127.0.0.1:9/v1", "max_retries": 1}),
        asleep=gateway.policy.asleep)
    with dspy.context(lm=closed.dspy_lm()), pytest.raises(ProviderUnavailableError):
        await predict.acall(question="nobody listens")
    assert closed.usage.recent[-1].attempts == 2  # a refused connection is retried
