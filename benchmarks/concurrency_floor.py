"""What 256 concurrent asks cost at the floor of the stack, next to the assistant, in one run.

Three graphs of the same shape on the same local OpenAI-compatible server (its own process,
fixed latency per call), each making 5 LLM calls per ask in 3 sequential waves (two calls, then
two, then one, as the assistant's happy path does), with no checkpointer:

- `assistant`: ragloom's assistant on the openai engine (DSPy roles through the gateway);
- `langgraph_aiohttp`: a bare LangGraph `StateGraph` whose nodes POST raw JSON with one shared
  aiohttp session (no DSPy, no LangChain chat model, no retries): the floor of LangGraph + HTTP;
- `langgraph_dspy`: the same graph whose calls are `dspy.Predict` modules over a minimal
  `dspy.BaseLM` that POSTs with the same aiohttp session (the server's reply text is replaced by a
  well-formed DSPy reply, so DSPy parses it): the floor of LangGraph + DSPy + HTTP.

Prints JSON: per graph, the best of 3 single asks, the wall time of N concurrent asks, their
ratio, and client CPU per LLM call.

    python benchmarks/concurrency_floor.py [--asks 256] [--latency 0.1] [--gc default|tuned]
        [--server async|threaded]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import multiprocessing
import operator
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from concurrent_asks import _graph, server_for  # the assistant and the servers, as there


class FloorState(TypedDict, total=False):
    question: str
    notes: Annotated[list[str], operator.add]
    answer: str


def _body(text: str) -> dict[str, Any]:
    """A chat request the server's assistant script answers (as the router: "`route`")."""
    messages = [{"role": "system", "content": "`route`"}, {"role": "user", "content": text}]
    return {"model": "m", "messages": messages, "stream": False}


class _Poster:
    """One aiohttp session per event loop, POSTing chat completions."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.session: Any = None

    async def post(self, text: str) -> dict[str, Any]:
        import aiohttp

        if self.session is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)  # as the gateway's
            self.session = aiohttp.ClientSession(connector=connector)
        async with self.session.post(self.url, json=_body(text)) as reply:
            data: dict[str, Any] = await reply.json()
            return data

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


def _three_waves(two: Any, one: Any) -> Any:
    """START → two calls → two calls → one call → END."""
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(FloorState)
    builder.add_node("first", two)
    builder.add_node("second", two)
    builder.add_node("third", one)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", "third")
    builder.add_edge("third", END)
    return builder.compile()


def _raw_graph(poster: _Poster) -> Any:
    """Five raw POSTs in three waves."""

    async def two(state: FloorState) -> FloorState:
        replies = await asyncio.gather(poster.post(state["question"]),
                                       poster.post(state["question"]))
        return {"notes": [str(len(r)) for r in replies]}

    async def one(state: FloorState) -> FloorState:
        reply = await poster.post(state["question"])
        return {"answer": str(len(reply))}

    return _three_waves(two, one)


def _dspy_graph(poster: _Poster) -> Any:
    """The same graph; each call a `dspy.Predict` over an aiohttp `BaseLM`."""
    import dspy

    class PostLM(dspy.BaseLM):
        def forward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
            raise NotImplementedError("async only")

        async def aforward(self, prompt: Any = None, messages: Any = None,
                           **kwargs: Any) -> Any:
            reply = await poster.post(str(messages or prompt))
            content = "[[ ## answer ## ]]\nok\n\n[[ ## completed ## ]]"
            reply["choices"][0]["message"]["content"] = content
            return reply

    lm = PostLM(model="m", model_type="chat", cache=False, num_retries=0)
    predict = dspy.Predict("question -> answer")

    async def ask(question: str) -> str:
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
            result = await predict.acall(question=question)
        return str(result.answer)

    async def two(state: FloorState) -> FloorState:
        notes = await asyncio.gather(ask(state["question"]), ask(state["question"]))
        return {"notes": list(notes)}

    async def one(state: FloorState) -> FloorState:
        return {"answer": await ask(state["question"])}

    return _three_waves(two, one)


def _config() -> dict[str, Any]:
    return {"configurable": {"thread_id": f"floor-{uuid.uuid4().hex[:12]}"}}


async def measure(graph: Any, asks: int, poster: _Poster | None) -> dict[str, float]:
    """Best of 3 single asks, then `asks` at once."""
    question = "How do I write an octal number?"
    await graph.ainvoke({"question": question}, _config())
    singles = []
    for _ in range(3):
        started = time.perf_counter()
        await graph.ainvoke({"question": question}, _config())
        singles.append(time.perf_counter() - started)
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(graph.ainvoke({"question": f"{question} {i}"}, _config())
                           for i in range(asks)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if poster is not None:
        await poster.close()
    one = min(singles)
    return {"one_ask_wall_s": round(one, 3), "concurrent_wall_s": round(wall, 3),
            "concurrent_to_one_ask": round(wall / one, 2),
            "client_cpu_ms_per_llm_call": round(cpu * 1000 / (5 * asks), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--asks", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--gc", choices=["default", "tuned"], default="tuned")
    parser.add_argument("--server", choices=["async", "threaded"], default="async")
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    queue: Any = multiprocessing.Queue()
    _control, child_end = multiprocessing.Pipe()  # kept open: the server answers on it
    server = multiprocessing.Process(target=server_for(args.server),
                                     args=(queue, child_end, args.latency), daemon=True)
    server.start()
    results: dict[str, Any] = {"asks": args.asks, "latency_per_call_s": args.latency,
                               "gc": args.gc, "server": args.server}
    try:
        base_url = queue.get(timeout=60)
        assistant = _graph(base_url, "memory", None)
        raw_poster, dspy_poster = _Poster(base_url), _Poster(base_url)
        graphs = {"assistant": (assistant, None),
                  "langgraph_aiohttp": (_raw_graph(raw_poster), raw_poster),
                  "langgraph_dspy": (_dspy_graph(dspy_poster), dspy_poster)}
        if args.gc == "tuned":
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 50, 100)
        for name, (graph, poster) in graphs.items():
            results[name] = asyncio.run(measure(graph, args.asks, poster))
    finally:
        server.kill()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
