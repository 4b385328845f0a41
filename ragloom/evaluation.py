"""Quality evaluation over a dataset directory shaped like shared/datasets/python-docs:
`corpus/` (documents) and `questions.jsonl` (`id`, `question`, `answer`, `gold`).

Retrieval figures come from `ragloom.tools.evaluation`; answer figures run the assistant graph on
every question (token-F1 against the reference answer, citation hit = the gold file is cited);
summary figures run the summarizer on documents whose first paragraph serves as reference.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from ragloom.core.extras import missing_extra
from ragloom.core.settings import Settings


def dataset_store(
    dataset_dir: Path, settings: Settings, *, path: Path | None = None, progress: bool = True
) -> Any:
    """A store holding the dataset's corpus: `path`, or one kept next to the configured store
    and reused (ingestion skips unchanged files, so only the first run embeds)."""
    from ragloom.core.embedders import build_embedder
    from ragloom.tools.ingest.pipeline import ingest_paths
    from ragloom.tools.stores import build_store

    embedder = build_embedder(settings)
    name = Path(dataset_dir).resolve().name
    path = path or settings.store.path.parent / "eval" / f"{name}-{embedder.name}.db"
    store_settings = settings.model_copy(
        update={"store": settings.store.model_copy(update={"path": path, "kind": "embedded"})}
    )
    store = build_store(store_settings, embedder)
    ingest_paths(
        [Path(dataset_dir) / "corpus"],
        store,
        root=Path(dataset_dir) / "corpus",  # gold files are named relative to the corpus
        chunk_tokens=settings.retrieval.chunk_tokens,
        overlap=settings.retrieval.chunk_overlap,
        progress=progress,
    )
    return store


def evaluate_answers(
    dataset_dir: Path,
    store: Any,
    settings: Settings,
    *,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the assistant on each question: token-F1 vs the reference, gold-file citation rate,
    and, in the same run, the retrieval figures of the store the assistant reads (documents
    ranked by the configured search: recall@1/5/10, nDCG@10) plus the citation hit rate over the
    questions whose gold file was in that top `retrieval.k`, so a gap between finding and citing
    shows."""
    from rich.progress import Progress

    from ragloom.graphs.assistant import build_assistant
    from ragloom.prompts.metrics import citation_hit, token_f1
    from ragloom.tools.evaluation import (
        dedupe_sources,
        load_questions,
        mean_metrics,
        question_metrics,
    )

    graph = build_assistant(settings, store=store, persist=False)
    questions = load_questions(dataset_dir)[:limit]
    judge = _Judges(settings) if settings.resolved_engine == "openai" else None
    f1s: list[float] = []
    hits: list[float] = []
    cited: list[float] = []
    found: list[dict[str, float]] = []
    hits_when_found: list[float] = []
    engine = ""
    started = time.perf_counter()
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("answers", total=len(questions))
        for item in questions:
            result = graph.invoke({"question": item.question})
            engine = result.get("engine", engine)
            sources = [c["source"] for c in result.get("citations", [])]
            f1s.append(token_f1(result.get("answer", ""), item.answer))
            hits.append(citation_hit(sources, item.gold))
            cited.append(1.0 if sources else 0.0)
            ranked = dedupe_sources(c.source for c in store.search(
                item.question, k=50, mode=settings.retrieval.mode, alpha=settings.retrieval.alpha,
                tenant=settings.store.tenant,
            ))
            found.append(question_metrics(ranked[:10], item.gold))
            if set(ranked[: settings.retrieval.k]) & set(item.gold):
                hits_when_found.append(hits[-1])
            if judge is not None:
                judge.score(item.question, result)
            bar.advance(task)
    count = len(questions) or 1
    figures: dict[str, Any] = {
        "questions": len(questions),
        "engine": engine,
        "token_f1": round(sum(f1s) / count, 4),
        "citation_hit_rate": round(sum(hits) / count, 4),
        "answered_with_citations": round(sum(cited) / count, 4),
        "retrieval": {
            "mode": settings.retrieval.mode, "alpha": settings.retrieval.alpha,
            "k": settings.retrieval.k,
            **{m: v for m, v in mean_metrics(found).items() if m != "mrr"},
        },
        "citation_hit_rate_when_retrieved": (
            round(sum(hits_when_found) / len(hits_when_found), 4) if hits_when_found else None
        ),
    }
    if judge is not None:
        figures.update(judge.means())
    figures["seconds"] = round(time.perf_counter() - started, 2)
    return figures


class _Judges:
    """The LLM judges of the graphs (compiled when available) as eval metrics: faithfulness of
    each answer to the passages it quotes, and its relevance to the question."""

    def __init__(self, settings: Settings) -> None:
        from ragloom.core.llm import LLMGateway
        from ragloom.prompts.registry import load_judges

        self.judges = load_judges(settings)
        self.lm = LLMGateway(settings.llm).dspy_lm()
        self.faithfulness: list[float] = []
        self.relevance: list[float] = []

    def score(self, question: str, result: dict[str, Any]) -> None:
        import dspy

        from ragloom.prompts.metrics import judge_faithfulness, judge_relevance
        from ragloom.prompts.programs import make_adapter

        answer = result.get("answer", "")
        quotes = "\n".join(c.get("quote", "") for c in result.get("citations", []))
        with dspy.context(lm=self.lm, adapter=make_adapter()):
            self.faithfulness.append(
                judge_faithfulness(quotes, answer, self.judges["faithfulness"])
            )
            self.relevance.append(judge_relevance(question, answer, self.judges["relevance"]))

    def means(self) -> dict[str, float]:
        count = len(self.faithfulness) or 1
        return {
            "judge_faithfulness": round(sum(self.faithfulness) / count, 4),
            "judge_relevance": round(sum(self.relevance) / count, 4),
        }


def check_minimums(figures: dict[str, Any], minimums: Sequence[str]) -> list[str]:
    """Failures of `METRIC=VALUE` gates; METRIC is a dotted path into `figures`."""
    failures = []
    for gate in minimums:
        name, _, wanted = gate.partition("=")
        value: Any = figures
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            failures.append(f"{name}: no such figure")
        elif float(value) < float(wanted):
            failures.append(f"{name}: {value} < {wanted}")
    return failures


def reference_and_rest(raw: str) -> tuple[str, str] | None:
    """A page's first prose paragraph (≥ 8 words) after the title, and the text after it: the
    paragraph is the reference summary, the rest is the document to summarize."""
    from ragloom.core.text import blocks, clean_markup

    for kind, block in blocks(raw):
        if kind == "code" or block.lstrip().startswith("**Source code"):
            continue
        if len(block.split()) < 8:
            continue
        lines = block.strip().splitlines()
        start = raw.find(lines[0].strip())
        if start < 0:
            return None
        end = raw.find(lines[-1].strip(), start) + len(lines[-1].strip())
        return clean_markup(" ".join(block.split())), raw[end:]
    return None


def lead(text: str, k: int) -> str:
    """The lead-k baseline: the first k sentences."""
    from ragloom.core.text import split_sentences

    return " ".join(s.clean for s in split_sentences(text)[:k])


def overview(summary: str) -> str:
    """The paragraph under '## Overview' of a structured summary (else the whole summary)."""
    import re

    match = re.search(r"## Overview\s*\n\s*\n(.*?)(\n\s*\n|$)", summary, re.S)
    return match.group(1).strip() if match else summary


def evaluate_summaries(
    dataset_dir: Path,
    settings: Settings,
    *,
    limit: int | None = None,
    length: Literal["short", "medium", "long"] = "short",
    progress: bool = True,
) -> dict[str, Any]:
    """ROUGE-1/2/L F1 of the summarizer's overview of each `corpus/library/*.rst` page (its lead
    paragraph removed) against that paragraph, next to the lead-k baseline of the same length."""
    from rich.progress import Progress

    try:
        from rouge_score import rouge_scorer
    except ImportError as exc:
        raise missing_extra("eval", "rouge-score", "ragloom eval summaries") from exc

    from ragloom.core.text import clean_markup, split_sentences
    from ragloom.graphs.summarizer import build_summarizer
    from ragloom.tools.ingest.loaders import load_document

    metrics = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(metrics), use_stemmer=True)
    graph = build_summarizer(settings, persist=False)
    pages = sorted((Path(dataset_dir) / "corpus" / "library").glob("*.rst"))[:limit]
    scores: dict[str, dict[str, list[float]]] = {
        name: {m: [] for m in metrics} for name in ("summarizer", "lead_k")
    }
    wins, engine = 0, ""
    started = time.perf_counter()
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("summaries", total=len(pages))
        for page in pages:
            bar.advance(task)
            split = reference_and_rest(page.read_text(encoding="utf-8", errors="replace"))
            if split is None or len(split_sentences(split[1])) < 5:
                continue
            reference, rest = split
            title = clean_markup(load_document(page).title)
            document = {"source": page.name, "title": title, "text": rest}
            result = graph.invoke({"documents": [document], "length": length})
            engine = result.get("engine", engine)
            summary = overview(result["summary"])
            k = max(1, len(split_sentences(summary)))
            systems = {"summarizer": summary, "lead_k": lead(rest, k)}
            results = {name: scorer.score(reference, text) for name, text in systems.items()}
            for name, result_ in results.items():
                for metric in metrics:
                    scores[name][metric].append(result_[metric].fmeasure)
            wins += results["summarizer"]["rougeL"].fmeasure > results["lead_k"]["rougeL"].fmeasure
    used = len(scores["summarizer"]["rougeL"])
    return {
        "pages": used,
        "engine": engine,
        "length": length,
        "f1": {
            name: {m: round(sum(v) / len(v), 4) if v else None for m, v in per.items()}
            for name, per in scores.items()
        },
        "beats_lead_k_rougeL": round(wins / used, 3) if used else None,
        "seconds": round(time.perf_counter() - started, 2),
    }
