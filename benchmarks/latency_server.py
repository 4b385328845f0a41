"""An asyncio (aiohttp.web) OpenAI-compatible chat server for the concurrency benchmarks.

The test server of `ragloom.core.testing` is threaded (one thread per connection, faults,
recording). With hundreds of connections it spends more CPU per request, and on a 2-core machine
that the client shares, that CPU shows up in the client's wall time: `concurrency_floor.py` (bare
LangGraph + aiohttp client, 256 asks) gave 11.4× one ask against it and 5.5× against this one
with other sessions on the machine (load ~3), and 5.9× vs 6.0× when the machine was quiet.
This server replies with the
same script (`tests.graphs.llm_script.AssistantLLM`) and the same completion JSON (plain or
streamed), after a fixed latency, and records each chat request's arrival time so waves can be
counted from the server's clock. No faults, no auth: benchmarks only.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any


def serve(port_queue: Any, control: Any, latency: float) -> None:
    """Run the server (in a child process): put its base URL on `port_queue`; on "times" from
    `control`, send back the arrival times of the chat requests since the last "times"."""
    from aiohttp import web

    from ragloom.core.testing.openai_server import Reply, _completion, _stream_chunks, _usage
    from tests.graphs.llm_script import AssistantLLM

    script = AssistantLLM()
    arrivals: list[float] = []
    lock = threading.Lock()

    async def chat(request: web.Request) -> web.StreamResponse:
        received = time.time()
        body = await request.json()
        with lock:
            arrivals.append(received)
        reply = Reply(content=str(script(body)))
        await asyncio.sleep(latency)
        usage = _usage(body, reply)
        if not body.get("stream"):
            return web.json_response(_completion(body, reply, usage, "test-model"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for chunk in _stream_chunks(body, reply, usage, "test-model"):
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def answer_times() -> None:
        while True:
            if control.recv() == "times":
                with lock:
                    times = list(arrivals)
                    arrivals.clear()
                control.send(times)

    async def main() -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        port = runner.addresses[0][1]
        threading.Thread(target=answer_times, daemon=True).start()
        port_queue.put(f"http://127.0.0.1:{port}/v1")
        await asyncio.Event().wait()

    asyncio.run(main())
