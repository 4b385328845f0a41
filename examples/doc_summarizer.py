"""Summarize documents of any length: an overview plus key points per section.

    python examples/doc_summarizer.py PATH [PATH...] [--length short|medium|long] [--out FILE]
                                      [--json] [--budget TOKENS] [--thread ID]

PATH is a file or a folder (its .txt/.md/.rst/.html/.pdf files). Runs offline with the
extractive engine unless a key or base URL is configured (then map and reduce are DSPy modules
through the LLM gateway). The same entry as `ragloom summarize`.

With `--thread ID` the run is checkpointed (settings' checkpointer, SQLite by default): if it
fails or the process is killed, the same command with the same ID resumes it and summarizes
only the chunks that had not finished.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ragloom.commands.summarize import run_summarize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="files and/or folders")
    parser.add_argument("--length", choices=("short", "medium", "long"), default="medium")
    parser.add_argument("--out", type=Path, help="also write the result to this file")
    parser.add_argument("--json", action="store_true", help="print a machine-readable result")
    parser.add_argument("--budget", type=int, help="input tokens one model call may take")
    parser.add_argument("--thread", help="checkpoint under this id; after a failure or a kill, "
                        "the same command with the same id resumes (finished chunks are kept)")
    args = parser.parse_args(argv)
    return run_summarize(
        args.paths,
        length=args.length,
        out=args.out,
        as_json=args.json,
        token_budget=args.budget,
        thread=args.thread,
    )


if __name__ == "__main__":
    sys.exit(main())
