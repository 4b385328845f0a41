"""Checkpoint size as a thread grows: bytes of the latest checkpoint after each turn.

    python benchmarks/thread_growth.py [--turns 50] [--max-messages 100]

Runs the assistant (scripted roles, no model) on one thread with the SQLite checkpointer and
prints JSON: the latest checkpoint's size in bytes after turns 1, 10, 25, 50 (and the last),
the messages kept, and the database size. With `--max-messages` below 2 x turns the size levels
off where the thread is trimmed.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the scripted roles live with the tests

from ragloom.graphs.assistant import build_assistant_graph  # noqa: E402
from ragloom.graphs.assistant_state import AssistantDeps  # noqa: E402
from ragloom.graphs.checkpointers import ThreadSqliteSaver  # noqa: E402
from tests.graphs.fakes import ListStore, Script, sample_chunks, scripted_roles  # noqa: E402


def latest_checkpoint_bytes(db: Path, thread_id: str) -> int:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT length(checkpoint) FROM checkpoints WHERE thread_id = ? "
            "ORDER BY checkpoint_id DESC LIMIT 1",
            (thread_id,),
        ).fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--max-messages", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "threads.db"
        saver = ThreadSqliteSaver.from_path(db)
        deps = AssistantDeps(store=ListStore(sample_chunks()),
                             roles=scripted_roles(Script(rewrites=["octal literals"])),
                             max_messages=args.max_messages)  # fmt: skip
        graph = build_assistant_graph(deps, checkpointer=saver)
        config = {"configurable": {"thread_id": "long"}}
        sizes: dict[int, int] = {}
        for turn in range(1, args.turns + 1):
            graph.invoke({"question": f"How do I write octal numbers? (turn {turn})"}, config)
            if turn in (1, 10, 25, 50) or turn == args.turns:
                sizes[turn] = latest_checkpoint_bytes(db, "long")
        messages = len(graph.get_state(config).values["messages"])
        saver.conn.close()
        print(json.dumps({
            "turns": args.turns, "max_messages": args.max_messages,
            "checkpoint_bytes_after_turn": sizes, "messages_kept": messages,
            "bytes_per_turn_last": round(sizes[args.turns] / args.turns, 1),
            "db_bytes": db.stat().st_size,
        }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
