"""Run the quick benchmarks in turn and print their JSON (`make bench`).

    python benchmarks/run_all.py [--full]

The default set takes a few minutes. `--full` adds the ones that embed the python-docs corpus
with the local model (about half an hour on 2 cores): ingest throughput and the query benchmark
at 100k chunks. Figures and their dates are recorded by hand in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASET = HERE.parents[1] / "shared" / "datasets" / "python-docs"

QUICK = [
    ["graph_overhead.py", "--runs", "2000"],
    ["concurrent_asks.py", "--asks", "256", "--latency", "0.1"],
    ["summary_concurrency.py", "--chunks", "200", "--delay", "0.1", "--concurrency", "8"],
    ["summary_quality.py", "--length", "short"],
    ["query_bench.py", "--sizes", "10000", "--queries", "200"],
]
FULL = [
    ["ingest_bench.py", "--corpus", str(DATASET / "corpus"), "--store", "/tmp/ragloom-bench.db"],
    ["query_bench.py", "--sizes", "10000", "100000", "--queries", "200"],
]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="also the corpus-embedding runs")
    args = parser.parse_args()
    failed = 0
    for command in QUICK + (FULL if args.full else []):
        print(f"\n### {' '.join(command)}", flush=True)
        run = subprocess.run([sys.executable, str(HERE / command[0]), *command[1:]])
        failed += run.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
