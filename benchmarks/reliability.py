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
  store_faults  Weaviate: python-docs pages ingested through the real client while `rate` (and
              then 70%) of BatchObjects calls are faulted (UNAVAILABLE, cut after part of the
              batch was stored, slower than the insert timeout): every chunk stored or named in
              a StoreWriteError, retries only by the policy, a clean re-run exact with no
              duplicates. Embedded: `ragloom ingest` killed (SIGKILL) at several points, then
              re-run: integrity_check ok after each kill, exact count, no duplicates (once inside
              a 1 MB page's write transaction: nothing of it left after recovery); two
              concurrent ingests of overlapping folders: both end (or a typed busy error), exact.
  crash_resume  `ragloom ask --thread` killed (SIGKILL) while the server holds each role's
              request in turn (`--kill-rounds` per role), then a new process on the thread:
              answers, half-turn dropped, history intact, no duplicates, `threads show` works;
              `examples/doc_summarizer.py --thread` killed mid-map at several points of a
              `--summary-chunks` document, rerun: only the chunks not checkpointed are redone.
  bad_queries  empty, blank, control-only, 100 KB, NUL, ANSI/OSC/C1 escapes, non-UTF-8 bytes,
              unknown tenant, bad filters on `ragloom ask`/`search` (in-process and real
              processes with real argv bytes), the assistant graph (extractive and openai) and
              the server: a proper answer or one typed error each, no traceback, hang or 500.
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


def crash_resume(args: argparse.Namespace, root: Path) -> tuple[dict[str, Any], str]:
    from tests.reliability.crash_resume import (
        run_chat_crash,
        run_summarizer_crash,
        summary_rows,
    )
    from tests.reliability.llm_faults import format_table

    roles = ("route", "grade", "answer", "ground") * args.kill_rounds
    (root / "chat").mkdir()
    chat = run_chat_crash(root / "chat", kill_roles=roles)
    runs = []
    chunks = args.summary_chunks
    for share in (0.25, 0.5, 0.75):
        folder = root / f"summary-{share}"
        folder.mkdir()
        runs.append(run_summarizer_crash(folder, chunks=chunks,
                                         finish_before_kill=max(1, round(chunks * share))))
    totals: dict[str, Any] = {
        key: sum(getattr(r, key) for r in runs)
        for key in ("answered_before_kill", "checkpointed_before_kill", "map_requests_before",
                    "map_requests_resume", "redone_finished", "unfinished_not_redone",
                    "reduce_requests_resume", "tracebacks")
    }  # fmt: skip
    totals["chunks"] = f"{len(runs)} x {chunks}"
    violations: dict[str, int] = dict(chat.violations())
    for run in runs:
        for key, value in run.violations().items():
            violations[f"summary_{key}"] = violations.get(f"summary_{key}", 0) + value
    data = {"chat": chat.to_dict(), "summaries": [r.to_dict() for r in runs],
            "violations": violations}  # fmt: skip
    title = (f"Crash and resume: {chat.rounds} asks killed mid-turn, "
             f"{len(runs)} summaries killed mid-map")  # fmt: skip
    return data, format_table(summary_rows(chat.to_dict(), totals), title)


def store_faults(args: argparse.Namespace, root: Path) -> tuple[dict[str, Any], str]:
    from tests.reliability.llm_faults import format_table
    from tests.reliability.store_faults import (
        KillConfig,
        WeaviateFaultConfig,
        big_page,
        corpus_subset,
        embedded_rows,
        reference_run,
        run_concurrent_ingests,
        run_kill_in_transaction,
        run_kill_resume,
        run_weaviate_faults,
        weaviate_rows,
    )

    corpus = corpus_subset(root / "weaviate" / "corpus", args.store_files)
    data: dict[str, Any] = {}
    tables = []
    for name, rate in (("weaviate", args.rate), ("weaviate_storm", 0.7)):
        config = WeaviateFaultConfig(files=args.store_files, rate=rate, seed=args.seed)
        data[name] = run_weaviate_faults(corpus, root / "weaviate", config)
        tables.append(format_table(weaviate_rows(data[name]),
                                   f"Store faults, Weaviate: {rate:.0%} of batch calls faulted"))
    cwd = root / "embedded"
    corpus_subset(cwd / "corpus", args.kill_files, parts=3)
    reference = reference_run(cwd, "corpus")
    kill_at = (0.1, 0.3, 0.5, 0.7, 0.9)
    data["embedded_kill"] = run_kill_resume(
        cwd, reference, KillConfig(files=args.kill_files, kill_at=kill_at, seed=args.seed))
    data["embedded_concurrent"] = run_concurrent_ingests(
        cwd, reference, [["corpus/part1", "corpus/part2"], ["corpus/part2", "corpus/part3"]])
    big = root / "embedded-big"
    big_page(big / "big", 1_000_000)  # one source whose write transaction outgrows the cache
    data["embedded_in_transaction"] = run_kill_in_transaction(big, reference_run(big, "big"))
    tables.append(format_table(
        embedded_rows(data["embedded_kill"], data["embedded_concurrent"],
                      data["embedded_in_transaction"]),
        f"Store faults, embedded: kill -9 at {len(kill_at)} points and inside a write "
        "transaction, two concurrent ingests"))
    data["violations"] = {f"{name}.{key}": value for name in data
                          for key, value in data[name]["violations"].items()}
    return data, "\n\n".join(tables)


def bad_queries(args: argparse.Namespace, root: Path) -> tuple[dict[str, Any], str]:
    from tests.reliability.bad_queries import run_bad_queries, summary_rows
    from tests.reliability.llm_faults import format_table

    data = run_bad_queries(root, processes=True).to_dict()
    title = f"Bad queries: {data['cases']} kinds, {data['checks']} checks on every surface"
    return data, format_table(summary_rows(data), title)


PARTS: dict[str, Callable[[argparse.Namespace, Path], tuple[dict[str, Any], str]]] = {
    "llm_faults": llm_faults,
    "injection": injection,
    "store_faults": store_faults,
    "crash_resume": crash_resume,
    "bad_queries": bad_queries,
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
    parser.add_argument("--store-files", type=int, default=40,
                        help="store_faults: python-docs pages ingested into Weaviate")
    parser.add_argument("--kill-files", type=int, default=120,
                        help="store_faults: python-docs pages of each killed embedded ingest")
    parser.add_argument("--kill-rounds", type=int, default=2,
                        help="crash_resume: asks killed per role")
    parser.add_argument("--summary-chunks", type=int, default=40,
                        help="crash_resume: chunks of each killed summary")
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
