"""The reliability suite (`make reliability`): fault parts run at full size; prints one JSON
object, then a summary table per part, and exits 1 when any part has violations.

    python benchmarks/reliability.py [--asks 500] [--concurrency 16] [--rate 0.3]
                                     [--parts llm_faults,injection] [--json-only]

Parts (the fast versions run in the test suite, tests/reliability/):
  llm_faults  N assistant asks on the openai engine against the local OpenAI-compatible server
              with `rate` of the requests faulted (429 with/without Retry-After, 500, 503, slow
              past the timeout, dropped connections, bodies that are not JSON, truncated bodies
              and streams, truncated-JSON replies): every ask answered or a typed error within
              its deadline, none hung, attempts within the retry policy, counted.
  injection   documents that give orders or forge passage headers, a model that obeys them,
              a planted API key: no tool runs, citations stay true, the key never surfaces.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def llm_faults(args: argparse.Namespace, root: Path) -> tuple[dict[str, Any], str]:
    from ragloom.core.testing import OpenAICompatibleServer
    from tests.reliability.llm_faults import (
        FaultyLLM,
        SuiteConfig,
        format_table,
        run_fault_suite,
        summary_rows,
    )

    config = SuiteConfig(asks=args.asks, concurrency=args.concurrency, rate=args.rate,
                         seed=args.seed)
    faulty = FaultyLLM(rate=config.rate, seed=config.seed, timeout=config.timeout)
    with OpenAICompatibleServer(faulty) as server:
        summary = run_fault_suite(server, faulty, root, config)
    title = f"LLM faults: {config.asks} asks, {config.rate:.0%} of requests faulted"
    return summary, format_table(summary_rows(summary), title)


def injection(args: argparse.Namespace, root: Path) -> tuple[dict[str, Any], str]:
    from tests.reliability.injection import run_injection_suite, summary_rows
    from tests.reliability.llm_faults import format_table

    report, _ = run_injection_suite(root)
    data = report.to_dict()
    data["violations"] = report.violations()
    rows = summary_rows({**data, "violations": len(data["violations"])})
    return data, format_table(rows, "Injection and secrets: obedient model, planted key")


PARTS: dict[str, Callable[[argparse.Namespace, Path], tuple[dict[str, Any], str]]] = {
    "llm_faults": llm_faults,
    "injection": injection,
}


def _violations(part: dict[str, Any]) -> int:
    found = part.get("violations") or {}
    if isinstance(found, dict):
        return sum(v if isinstance(v, int) else bool(v) for v in found.values())
    return int(bool(found))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--asks", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--json-only", action="store_true", help="print the JSON only")
    args = parser.parse_args()
    names = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        parser.error(f"unknown parts {unknown}; known: {', '.join(PARTS)}")
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    tables = []
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"ragloom-rel-{name}-") as tmp:
            started = time.monotonic()
            data, table = PARTS[name](args, Path(tmp))
            data["part_s"] = round(time.monotonic() - started, 2)
            results[name] = data
            tables.append(table)
    failed = [n for n in names if _violations(results[n])]
    results["violations"] = {n: _violations(results[n]) for n in names}
    print(json.dumps(results, indent=2, default=str))
    if not args.json_only:
        print()
        print("\n\n".join(tables))
        print(f"\nresult: {'FAIL ' + ', '.join(failed) if failed else 'ok'} "
              f"(violations: {sum(results['violations'].values())})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
