"""Summary quality on python-docs `corpus/library/`: extractive summary vs the lead-k baseline.

For each page, the first prose paragraph after the title (the module's own description) is the
reference and everything after it is the document. We score, with rouge-score (stemmed F1):

- `extractive_map`: `ExtractiveMapSummarizer` on the document (one call, `--length`);
- `extractive_graph`: the overview paragraph of the full summarizer graph (split, map, reduce);
- `lead_k`: the first k sentences of the document, k = the extractive summary's sentence count
  (the classic baseline, as long as the summary it is compared with).

    python benchmarks/summary_quality.py [--corpus DIR] [--length short] [--limit N]

Prints JSON: mean ROUGE-1/2/L F1 per system, and how often each system beats lead-k on ROUGE-L.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from ragloom.agents.extractive import ExtractiveMapSummarizer
from ragloom.core.text import clean_markup, split_sentences
from ragloom.evaluation import lead, overview, reference_and_rest

CORPUS = Path(__file__).resolve().parents[2] / "shared/datasets/python-docs/corpus/library"
METRICS = ("rouge1", "rouge2", "rougeL")


async def graph_summary(graph: Any, title: str, rest: str, length: str) -> str:
    document = {"source": "page.rst", "title": title, "text": rest}
    result = await graph.ainvoke({"documents": [document], "length": length})
    return overview(result["summary"])


def main(argv: list[str] | None = None) -> int:
    from rouge_score import rouge_scorer

    from ragloom.core.logging import configure_logging
    from ragloom.graphs.summarizer import build_summarizer
    from ragloom.tools.ingest.loaders import load_document

    configure_logging(level="WARNING")
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--length", default="short", choices=("short", "medium", "long"))
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args(argv)

    scorer = rouge_scorer.RougeScorer(list(METRICS), use_stemmer=True)
    mapper = ExtractiveMapSummarizer()
    graph = build_summarizer(persist=False)
    pages = sorted(args.corpus.glob("*.rst"))
    if args.limit:
        pages = pages[: args.limit]
    scores: dict[str, dict[str, list[float]]] = {
        name: {m: [] for m in METRICS} for name in ("extractive_map", "extractive_graph", "lead_k")
    }
    wins = {"extractive_map": 0, "extractive_graph": 0}
    used = 0
    started = time.perf_counter()
    for page in pages:
        split = reference_and_rest(page.read_text(encoding="utf-8", errors="replace"))
        if split is None or len(split_sentences(split[1])) < 5:
            continue
        reference, rest = split
        title = clean_markup(load_document(page).title)  # the page's own title, not the reference
        summary = mapper.summarize(rest, title, args.length)
        k = max(1, len(split_sentences(summary)))
        systems = {
            "extractive_map": summary.replace("\n\n", " "),
            "extractive_graph": asyncio.run(graph_summary(graph, title, rest, args.length)),
            "lead_k": lead(rest, k),
        }
        results = {name: scorer.score(reference, text) for name, text in systems.items()}
        for name, result in results.items():
            for metric in METRICS:
                scores[name][metric].append(result[metric].fmeasure)
        for name in wins:
            wins[name] += results[name]["rougeL"].fmeasure > results["lead_k"]["rougeL"].fmeasure
        used += 1
    report = {
        "corpus": str(args.corpus),
        "pages": used,
        "length": args.length,
        "seconds": round(time.perf_counter() - started, 2),
        "f1": {
            name: {m: round(statistics.fmean(v), 4) if v else None for m, v in per.items()}
            for name, per in scores.items()
        },
        "beats_lead_k_rougeL": {
            name: round(w / used, 3) if used else None for name, w in wins.items()
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
