"""Client CPU per LLM call, layer by layer, in one run (issue 14's table).

Each layer makes the same chat-completion request to the local OpenAI-compatible server (in a
child process, so its CPU is not counted) and the client process's CPU time
(`time.process_time`) is divided by the number of calls: first `--sequential` calls one after
another, then `--concurrent` calls at once (one `asyncio.gather`). Layers, bottom up:

    aiohttp            raw aiohttp POST + JSON decode
    httpx2             raw httpx2.AsyncClient POST (the transport openai 3.x uses)
    sdk_httpx          openai.AsyncOpenAI, its default httpx2 client
    sdk_aiohttp        openai.AsyncOpenAI over openai.DefaultAioHttpClient
    chatopenai         langchain_openai.ChatOpenAI.ainvoke (its own client)
    gateway_httpx      LLMGateway(transport="httpx").chat_model().ainvoke
    gateway_aiohttp    LLMGateway(transport="aiohttp").chat_model().ainvoke (the default)
    dspy_fake_lm       dspy.Predict.acall over a fake BaseLM (no HTTP: DSPy's own cost)
    dspy_gateway       dspy.Predict.acall over the gateway's DSPy LM (CachingChatAdapter; outside
                       a LangChain run it takes the direct aiohttp path)
    full_ask           build_assistant(...).ainvoke on the openai engine, CPU per LLM call

    python benchmarks/llm_call_cpu.py [--sequential 200] [--concurrent 500] [--layers a,b]

Prints JSON: per layer, ms of client CPU per call (sequential / concurrent) and wall seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ANSWER = "[[ ## answer ## ]]\nok\n\n[[ ## completed ## ]]"
MESSAGES = [{"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What is an octal literal in Python?"}]
MODEL = "gpt-4o-mini"
TIMEOUT = 120.0  # the threaded test server accepts a 500-connection burst slowly on a busy box
LAYERS = ["aiohttp", "httpx2", "sdk_httpx", "sdk_aiohttp", "chatopenai", "gateway_httpx",
          "gateway_aiohttp", "dspy_fake_lm", "dspy_gateway", "full_ask"]


def _dspy_reply(body: dict[str, Any]) -> str:
    return ANSWER


def serve(port_queue: Any, kind: str) -> None:
    """Run a server until killed (in a child process): fixed DSPy-shaped replies or the
    scripted assistant."""
    from ragloom.core.testing import OpenAICompatibleServer

    if kind == "assistant":
        from tests.graphs.llm_script import AssistantLLM

        server = OpenAICompatibleServer(AssistantLLM()).start()
    else:
        server = OpenAICompatibleServer(_dspy_reply).start()
    port_queue.put(server.base_url)
    while True:
        time.sleep(3600)
        server.requests.clear()


def start_server(kind: str) -> tuple[Any, str]:
    queue: Any = multiprocessing.Queue()
    process = multiprocessing.Process(target=serve, args=(queue, kind), daemon=True)
    process.start()
    return process, str(queue.get(timeout=60))


Call = Callable[[], Awaitable[Any]]


async def layer(name: str, base_url: str, assistant_url: str) -> tuple[Call, float, Any]:
    """(one call, LLM calls per call, something to close) for layer `name`."""
    body = {"model": MODEL, "messages": MESSAGES, "temperature": 0.0}
    if name == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                        timeout=aiohttp.ClientTimeout(total=TIMEOUT))

        async def raw_aiohttp() -> Any:
            async with session.post(f"{base_url}/chat/completions", json=body) as response:
                return await response.json()

        return raw_aiohttp, 1, session
    if name == "httpx2":
        import httpx2

        client = httpx2.AsyncClient(limits=httpx2.Limits(max_connections=1000), timeout=TIMEOUT)

        async def raw_httpx() -> Any:
            return (await client.post(f"{base_url}/chat/completions", json=body)).json()

        return raw_httpx, 1, client
    if name in ("sdk_httpx", "sdk_aiohttp"):
        import openai

        http = openai.DefaultAioHttpClient() if name == "sdk_aiohttp" else None
        sdk = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0,
                                 http_client=http, timeout=TIMEOUT)

        async def sdk_call() -> Any:
            return await sdk.chat.completions.create(model=MODEL, messages=MESSAGES,  # type: ignore[arg-type]
                                                     temperature=0.0)

        return sdk_call, 1, sdk
    if name == "chatopenai":
        from langchain_openai import ChatOpenAI

        chat = ChatOpenAI(model=MODEL, base_url=base_url, api_key="x",  # type: ignore[arg-type]
                          max_retries=0, temperature=0.0, timeout=TIMEOUT)
        return (lambda: chat.ainvoke(MESSAGES)), 1, None
    from ragloom.core.llm import LLMGateway
    from ragloom.core.settings import LLMSettings

    settings = LLMSettings(base_url=base_url, model=MODEL, timeout=TIMEOUT, deadline=600)
    if name in ("gateway_httpx", "gateway_aiohttp"):
        gateway = LLMGateway(settings, transport=name.split("_")[1])  # type: ignore[arg-type]
        gateway_chat = gateway.chat_model()
        return (lambda: gateway_chat.ainvoke(MESSAGES)), 1, gateway.async_clients
    import dspy

    from ragloom.prompts.programs import make_adapter

    predict = dspy.Predict("question -> answer")
    adapter = make_adapter()
    if name == "dspy_fake_lm":
        lm: Any = _fake_lm()
    elif name == "dspy_gateway":
        gateway = LLMGateway(settings)
        lm = gateway.dspy_lm()
    else:
        return await _full_ask(assistant_url)
    closer = gateway.async_clients if name == "dspy_gateway" else None

    async def dspy_call() -> Any:
        with dspy.context(lm=lm, adapter=adapter):
            return await predict.acall(question="What is an octal literal in Python?")

    return dspy_call, 1, closer


def _fake_lm_class() -> type[Any]:
    import dspy

    class FakeLM(dspy.BaseLM):
        """Answers at once with a DSPy-shaped completion: DSPy's own per-call cost."""

        def __init__(self) -> None:
            super().__init__(model="fake", model_type="chat", cache=False, num_retries=0)

        def _reply(self) -> dict[str, Any]:
            return {"id": "x", "object": "chat.completion", "model": "fake",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": ANSWER}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}}

        def forward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
            return self._reply()

        async def aforward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
            return self._reply()

    return FakeLM


def _fake_lm() -> Any:
    return _fake_lm_class()()


async def _full_ask(base_url: str) -> tuple[Call, float, Any]:
    from ragloom.core.settings import BudgetSettings
    from ragloom.core.testing import make_test_settings
    from ragloom.graphs import build_assistant
    from tests.graphs.fakes import ListStore, sample_chunks

    settings = make_test_settings(Path("/tmp/ragloom-bench-cpu"), base_url=base_url).model_copy(
        update={"budget": BudgetSettings(max_seconds=600, max_tokens=None)})
    settings.llm = settings.llm.model_copy(update={"timeout": TIMEOUT, "deadline": 600.0})
    graph = build_assistant(settings, store=ListStore(sample_chunks()), persist=False)
    first = await graph.ainvoke({"question": "How do I write an octal number?"})
    calls_per_ask = float(first["usage"]["llm_calls"])

    async def ask() -> Any:
        return await graph.ainvoke({"question": "How do I write an octal number?"})

    return ask, calls_per_ask, None


async def measure(call: Call, sequential: int, concurrent: int) -> dict[str, float]:
    for _ in range(5):
        await call()  # warm: imports, connections, the loop's client
    await asyncio.gather(*(call() for _ in range(concurrent)))  # open the connections a burst needs
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(sequential):
        await call()
    seq_cpu, seq_wall = time.process_time() - cpu, time.perf_counter() - wall
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(call() for _ in range(concurrent)))
    con_cpu, con_wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"seq_cpu_ms": seq_cpu * 1000 / sequential, "seq_wall_s": seq_wall,
            "con_cpu_ms": con_cpu * 1000 / concurrent, "con_wall_s": con_wall}


async def run(layers: list[str], sequential: int, concurrent: int, base_url: str,
              assistant_url: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in layers:
        call, llm_calls, closer = await layer(name, base_url, assistant_url)
        figures = await measure(call, sequential, concurrent)
        results[name] = {
            "cpu_ms_per_llm_call_sequential": round(figures["seq_cpu_ms"] / llm_calls, 3),
            "cpu_ms_per_llm_call_concurrent": round(figures["con_cpu_ms"] / llm_calls, 3),
            "llm_calls_per_unit": llm_calls,
            "concurrent_wall_s": round(figures["con_wall_s"], 3),
        }
        if closer is not None:
            close = getattr(closer, "aclose", None) or closer.close
            result = close()
            if asyncio.iscoroutine(result):
                await result
        print(name, json.dumps(results[name]), file=sys.stderr, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=500)
    parser.add_argument("--layers", default=",".join(LAYERS))
    args = parser.parse_args()
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    layers = [name for name in args.layers.split(",") if name]
    unknown = set(layers) - set(LAYERS)
    if unknown:
        parser.error(f"unknown layers: {sorted(unknown)}; known: {LAYERS}")
    plain, base_url = start_server("dspy")
    scripted, assistant_url = start_server("assistant")
    try:
        results = asyncio.run(run(layers, args.sequential, args.concurrent, base_url,
                                  assistant_url))
    finally:
        plain.kill()
        scripted.kill()
    print(json.dumps({"sequential_calls": args.sequential, "concurrent_calls": args.concurrent,
                      "python": sys.version.split()[0], "layers": results}, indent=2))


if __name__ == "__main__":
    main()
