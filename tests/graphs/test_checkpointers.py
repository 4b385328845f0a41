"""Threads persist: SQLite across processes, PostgreSQL for real, sync and async paths."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragloom.core.errors import ConfigError
from ragloom.core.settings import CheckpointerSettings
from ragloom.graphs.assistant import build_assistant_graph
from ragloom.graphs.assistant_state import AssistantDeps
from ragloom.graphs.checkpointers import ThreadSqliteSaver, build_checkpointer
from tests.graphs.fakes import ListStore, Script, sample_chunks, scripted_roles

REPO = Path(__file__).resolve().parents[2]

ASK = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    from ragloom.graphs.assistant import build_assistant_graph
    from ragloom.graphs.assistant_state import AssistantDeps
    from ragloom.graphs.checkpointers import ThreadSqliteSaver
    from tests.graphs.fakes import ListStore, Script, sample_chunks, scripted_roles

    context = AssistantDeps(
        store=ListStore(sample_chunks()), roles=scripted_roles(Script(rewrites=["octal literals"]))
    )
    graph = build_assistant_graph(context, checkpointer=ThreadSqliteSaver.from_path(sys.argv[1]))
    config = {{"configurable": {{"thread_id": "shared"}}}}
    graph.invoke({{"question": sys.argv[2]}}, config)
    print(len(graph.get_state(config).values["messages"]))
    """
)


def _graph(checkpointer):
    context = AssistantDeps(
        store=ListStore(sample_chunks()), roles=scripted_roles(Script(rewrites=["octal literals"]))
    )
    return build_assistant_graph(context, checkpointer=checkpointer)


def test_thread_survives_a_process_restart(tmp_path: Path) -> None:
    db = tmp_path / "threads.db"
    script = tmp_path / "ask.py"
    script.write_text(ASK.format(repo=str(REPO)))
    counts = [
        subprocess.run(
            [sys.executable, str(script), str(db), question],
            capture_output=True, text=True, check=True, timeout=120,
        ).stdout.split()[-1]
        for question in ("How do I write octal?", "and hex?")
    ]
    assert counts == ["2", "4"]  # the second process saw the first one's turn


def test_sqlite_saver_works_sync_and_async(tmp_path: Path) -> None:
    graph = _graph(ThreadSqliteSaver.from_path(tmp_path / "t.db"))
    config = {"configurable": {"thread_id": "a"}}
    asyncio.run(graph.ainvoke({"question": "octal?"}, config))
    graph.invoke({"question": "again?"}, config)
    history = list(graph.get_state_history(config))
    assert len(graph.get_state(config).values["messages"]) == 4
    assert len(history) > 4


def test_build_checkpointer_kinds(tmp_path: Path) -> None:
    saver = build_checkpointer(CheckpointerSettings(kind="sqlite", path=tmp_path / "x" / "t.db"))
    assert isinstance(saver, ThreadSqliteSaver)
    assert (tmp_path / "x" / "t.db").exists()
    with pytest.raises(ConfigError, match="postgres_url"):
        build_checkpointer(CheckpointerSettings(kind="postgres"))


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """The server `.ci/run` started, or a throwaway one from Debian's binaries when present."""
    url = os.environ.get("RAGLOOM_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not binaries or os.geteuid() != 0 or shutil.which("su") is None:
        pytest.skip("no PostgreSQL here: .ci/run installs and starts one")
    bin_dir = binaries[-1].parent
    data = Path(tempfile.mkdtemp(prefix="ragloom-pg-"))  # not under pytest's root-only tmp
    shutil.chown(data, "postgres")
    port = _free_port()

    def as_postgres(command: str) -> None:
        subprocess.run(["su", "postgres", "-c", command], check=True, capture_output=True,
                       timeout=120)

    as_postgres(f"{bin_dir}/initdb -D {data} -A trust -U postgres")
    as_postgres(f"{bin_dir}/pg_ctl -D {data} -o '-p {port} -k /tmp -c listen_addresses=127.0.0.1'"
                f" -l {data}/log -w start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        as_postgres(f"{bin_dir}/pg_ctl -D {data} -m fast stop")
        shutil.rmtree(data, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_postgres_thread_persists_across_savers(postgres_url: str) -> None:
    settings = CheckpointerSettings(kind="postgres", postgres_url=postgres_url)
    thread = f"pg-{uuid.uuid4().hex[:8]}"
    config = {"configurable": {"thread_id": thread}}
    first = _graph(build_checkpointer(settings))
    first.invoke({"question": "octal?"}, config)
    second = _graph(build_checkpointer(settings))  # a new connection, as another process would
    asyncio.run(second.ainvoke({"question": "and hex?"}, config))
    messages = second.get_state(config).values["messages"]
    assert [m.type for m in messages] == ["human", "ai", "human", "ai"]


def test_postgres_unreachable_is_a_config_error() -> None:
    settings = CheckpointerSettings(
        kind="postgres", postgres_url="postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"
    )
    with pytest.raises(ConfigError, match="postgres_url"):
        build_checkpointer(settings)


def test_postgres_async_path_uses_a_pool_per_event_loop(postgres_url: str) -> None:
    """`ainvoke` runs on the loop's AsyncPostgresSaver pool (no thread per write), concurrent
    threads of one loop all persist, and the pool closes when its loop ends."""
    saver = build_checkpointer(CheckpointerSettings(kind="postgres", postgres_url=postgres_url))
    graph = _graph(saver)
    threads = [f"pg-async-{uuid.uuid4().hex[:6]}-{i}" for i in range(8)]

    async def burst() -> list[int]:
        await asyncio.gather(*(
            graph.ainvoke({"question": "octal?"}, {"configurable": {"thread_id": t}})
            for t in threads
        ))
        states = [await graph.aget_state({"configurable": {"thread_id": t}}) for t in threads]
        assert len(saver._loops) == 1  # type: ignore[attr-defined]
        return [len(state.values["messages"]) for state in states]

    assert asyncio.run(burst()) == [2] * 8
    assert asyncio.run(burst()) == [4] * 8  # a second loop, a second pool, same threads
    assert len(saver._loops) == 0 and saver._loops.opened == 2  # type: ignore[attr-defined]
    # the sync path reads what the async one wrote
    assert len(graph.get_state({"configurable": {"thread_id": threads[0]}}).values["messages"]) == 4
    saver.close()  # type: ignore[attr-defined]
