"""`build_summarizer()`: summarize documents of any length.

    START -> load -> split -> plan ─┬─ stuff ─────────────────────────┐
                                    └─ Send(map) x chunks -> collect ─┴-> reduce -> finalize
                                     Send(collapse) x groups <──┘ too big (tree)

`plan` picks the strategy from the token budget of one call: *stuff* (the whole text fits one
reduce call), *map-reduce* (chunk summaries fit one reduce call) or *tree* (partial summaries are
collapsed level by level until they fit). Map and collapse tasks fan out with `Send` and run as
async tasks, at most `max_concurrency` at once. With a checkpointer every finished map task is
saved, so a run that fails half-way (or whose process is killed) resumes with
`ainvoke(None, config)` (same `thread_id`) and redoes only the chunks that had not finished.
Under sync `invoke`, LangGraph saves a finished task from the same thread pool the tasks run
in (`max_concurrency` workers): while slow map calls hold every worker, finished chunks wait
unsaved and a kill loses them. Run resumable summaries
with `ainvoke`/`astream`, as `ragloom summarize --thread` does. Sections keep their headings,
so the reduce step writes an overview plus key points per section.

Roles (map and reduce summarizers, extractive or DSPy) live in `SummarizerDeps`, never in state;
nodes are written once with the node kit and run under `invoke` and `ainvoke`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import structlog
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from ragloom.agents.roles import SectionSummary
from ragloom.core.documents import Document
from ragloom.core.errors import IngestError
from ragloom.core.text import clean_markup
from ragloom.graphs.nodes import NodeKit, RoleCall, Update, call
from ragloom.graphs.summarizer_state import (
    MapTask,
    SummarizerDeps,
    SummarizerInput,
    SummarizerOutput,
    SummarizerState,
)

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.graph.state import CompiledStateGraph

    from ragloom.core.llm import LLMGateway
    from ragloom.core.settings import Settings

log = structlog.get_logger(__name__)

# Tokens a map summary takes, per length: how `plan` predicts whether partials fit one call.
MAP_OUTPUT_TOKENS = {"short": 80, "medium": 160, "long": 280}
DEFAULT_BUDGET = {"extractive": 32_000, "openai": 8_000}
MAX_SECTIONS = 12  # more distinct second-level headings than this: group by the first level
LENGTHS = ("short", "medium", "long")


def _count_tokens(text: str) -> int:
    from ragloom.tools.ingest.chunking import count_tokens

    return count_tokens(text)


# ---------------------------------------------------------------- load and split


def expand_paths(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """Files named, plus the supported files under folders named (sorted), with their source
    names (a folder's files are named relative to the folder's parent)."""
    from ragloom.tools.ingest.loaders import SUPPORTED_SUFFIXES

    found: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                if file.suffix.lower() in SUPPORTED_SUFFIXES:
                    found.append((file, file.relative_to(path.parent).as_posix()))
        else:
            found.append((path, path.as_posix()))
    return found


def load(state: SummarizerState, deps: SummarizerDeps, runtime: Runtime[Any]) -> Update:
    """Read the named files and folders; bad files are reported in `errors` and skipped."""
    from ragloom.tools.ingest.loaders import load_document

    documents = [dict(d) for d in state.get("documents") or []]
    errors: list[dict[str, Any]] = []
    for path, source in expand_paths(state.get("paths") or []):
        try:
            doc = load_document(path, source=source)
        except IngestError as exc:
            log.warning("summarize.skip", source=source, error=str(exc))
            errors.append({"source": source, "code": exc.code, "error": exc.message})
            continue
        documents.append(
            {"source": doc.source, "title": doc.title, "text": doc.text,
             "headings": [[o, list(h)] for o, h in doc.headings]}
        )  # fmt: skip
    return {
        "loaded": documents,
        "documents": [],  # inputs are consumed: a later run on this thread starts afresh
        "paths": [],
        "errors": errors,
        "sources": [d["source"] for d in documents],
        "started_at": deps.clock(),
        "length": state.get("length") or "medium",
        "partials": None,
        "usage_log": None,
        "summary": "",
    }


def _to_document(data: dict[str, Any]) -> Document:
    headings = tuple((int(o), tuple(h)) for o, h in data.get("headings") or ())
    title = data.get("title") or ""
    if not headings:  # in-memory text: find its headings as the loader would
        from ragloom.tools.ingest.loaders import parse_text

        parsed = parse_text(data["text"], data["source"])
        headings, title = parsed.headings, title or parsed.title
    title = title or Path(data["source"]).stem
    return Document(source=data["source"], text=data["text"], title=title, headings=headings)


def _heading_path(title: str, heading_path: Sequence[str]) -> tuple[str, ...]:
    path = tuple(clean_markup(h) for h in heading_path if h.strip())
    if title and (not path or path[0] != title):
        path = (title, *path)
    return path or ("Document",)


def split(state: SummarizerState, deps: SummarizerDeps, runtime: Runtime[Any]) -> Update:
    """Token-sized, heading-aware chunks of every document, each with its section name."""
    from ragloom.tools.ingest.chunking import split_document

    rows: list[dict[str, Any]] = []
    for data in state.get("loaded") or []:
        if not str(data.get("text", "")).strip():
            continue
        doc = _to_document(data)
        for chunk in split_document(doc, deps.chunk_tokens, deps.chunk_overlap):
            path = _heading_path(clean_markup(doc.title), chunk.heading_path)
            rows.append(
                {"index": len(rows), "id": chunk.id, "source": chunk.source, "text": chunk.text,
                 "heading": " > ".join(path), "path": list(path),
                 "tokens": _count_tokens(chunk.text)}
            )  # fmt: skip
    _name_sections(rows)
    return {"chunk_data": rows, "chunks": len(rows)}


def _name_sections(rows: list[dict[str, Any]]) -> None:
    """Section = the first two heading levels (one when that gives too many sections), without
    the title every chunk shares."""
    shared = len({r["path"][0] for r in rows}) == 1
    paths = [r["path"][1:] if shared and len(r["path"]) > 1 else r["path"] for r in rows]
    depth = 2 if len({tuple(p[:2]) for p in paths}) <= MAX_SECTIONS else 1
    for row, path in zip(rows, paths, strict=True):
        row["section"] = " > ".join(path[:depth])


def plan(state: SummarizerState, deps: SummarizerDeps, runtime: Runtime[Any]) -> Update:
    """Pick stuff, map-reduce or tree from the token budget of one call."""
    rows = state.get("chunk_data") or []
    total = sum(r["tokens"] for r in rows)
    predicted = len(rows) * MAP_OUTPUT_TOKENS[state.get("length") or "medium"]
    if total <= deps.token_budget:
        strategy = "stuff"
    elif predicted <= deps.token_budget:
        strategy = "map-reduce"
    else:
        strategy = "tree"
    log.info("summarize.plan", strategy=strategy, chunks=len(rows), tokens=total,
             budget=deps.token_budget)  # fmt: skip
    return {"strategy": strategy, "total_tokens": total}


def after_plan(state: SummarizerState) -> list[Send] | Literal["reduce", "finalize"]:
    """Stuff goes straight to reduce; otherwise one map task per chunk."""
    rows = state.get("chunk_data") or []
    if not rows:
        return "finalize"
    if state.get("strategy") == "stuff":
        return "reduce"
    length = state.get("length") or "medium"
    return [
        Send("map", MapTask(level=0, index=r["index"], text=r["text"], heading=r["heading"],
                            section=r["section"], length=length))
        for r in rows
    ]  # fmt: skip


# ---------------------------------------------------------------- map and collapse


def summarize_task(task: MapTask, deps: SummarizerDeps, runtime: Runtime[Any]) -> RoleCall:
    """One map (or collapse) task: summarize a chunk or a group of partial summaries."""

    def done(summary: str) -> Update:
        entry = {
            "level": task["level"], "index": task["index"], "heading": task["heading"],
            "section": task["section"], "summary": summary.strip(),
            "tokens": _count_tokens(summary),
        }  # fmt: skip
        return {"partials": [entry]}

    role = deps.roles.map
    return call(role.summarize, task["text"], task["heading"], task["length"]).then(done)


def collect(state: SummarizerState) -> dict[str, Any]:
    """Join point after a fan-out level (routing happens in `after_collect`)."""
    return {}


def top_level(partials: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The partial summaries of the highest level, in document order."""
    if not partials:
        return []
    level = max(p["level"] for p in partials)
    return sorted((p for p in partials if p["level"] == level), key=lambda p: p["index"])


def _section_name(sections: Sequence[str]) -> str:
    unique = list(dict.fromkeys(s for s in sections if s))
    if len(unique) <= 3:
        return "; ".join(unique)
    return f"{unique[0]} … {unique[-1]}"


def group_partials(entries: Sequence[dict[str, Any]], budget: int) -> list[list[dict[str, Any]]]:
    """Pack consecutive partial summaries into groups of at most `budget` tokens, preferring
    to cut where the section changes."""
    groups: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        cost = entry["tokens"] + _count_tokens(entry["heading"]) + 4
        new_section = bool(current) and entry["section"] != current[-1]["section"]
        if current and (size + cost > budget or (new_section and size >= budget // 3)):
            groups.append(current)
            current, size = [], 0
        current.append(entry)
        size += cost
    if current:
        groups.append(current)
    return groups


def _after_collect(deps: SummarizerDeps) -> Callable[[SummarizerState], list[Send] | str]:
    def route(state: SummarizerState) -> list[Send] | str:
        return after_collect(state, deps)

    return route


def after_collect(state: SummarizerState, deps: SummarizerDeps) -> list[Send] | Literal["reduce"]:
    """Reduce when the top level fits one call; else collapse it one level (tree)."""
    ctx = deps
    entries = top_level(state.get("partials") or [])
    tokens = sum(e["tokens"] + _count_tokens(e["heading"]) + 4 for e in entries)
    level = entries[0]["level"] if entries else 0
    if tokens <= ctx.token_budget or len(entries) <= 1 or level >= ctx.max_levels:
        return "reduce"
    length = state.get("length") or "medium"
    sends = []
    for index, group in enumerate(group_partials(entries, ctx.token_budget)):
        text = "\n\n".join(e["summary"] for e in group if e["summary"])
        section = _section_name([e["section"] for e in group])
        sends.append(
            Send("collapse", MapTask(level=level + 1, index=index, text=text, heading=section,
                                     section=section, length=length))
        )  # fmt: skip
    return sends


# ---------------------------------------------------------------- reduce and finalize


def sections_for_reduce(state: SummarizerState) -> list[SectionSummary]:
    """Stuff: the chunks' own text by section; otherwise the top level of partial summaries."""
    if state.get("strategy") == "stuff":
        return [SectionSummary(r["section"], r["text"]) for r in state.get("chunk_data") or []]
    return [SectionSummary(e["section"], e["summary"]) for e in top_level(state["partials"])]


def _title(state: SummarizerState) -> str:
    if state.get("title"):
        return str(state["title"])
    documents = state.get("loaded") or []
    if len(documents) == 1:
        return clean_markup(documents[0].get("title") or Path(documents[0]["source"]).stem)
    return f"{len(documents)} documents"


def reduce(state: SummarizerState, deps: SummarizerDeps, runtime: Runtime[Any]) -> RoleCall:
    """Combine the sections (or the top level of partial summaries) into the summary."""

    def done(summary: str) -> Update:
        return {"summary": summary.strip()}

    length = state.get("length") or "medium"
    role = deps.roles.reduce
    return call(role.combine, _title(state), sections_for_reduce(state), length).then(done)


def finalize(state: SummarizerState, deps: SummarizerDeps, runtime: Runtime[Any]) -> Update:
    """Totals: strategy actually used, chunk count, LLM calls, tokens, seconds, engine."""
    ctx = deps
    usage = state.get("usage_log") or []
    partials = state.get("partials") or []
    levels = (max(p["level"] for p in partials) + 1) if partials else 0
    strategy = state.get("strategy") or "stuff"
    if strategy != "stuff":  # what actually happened: the plan predicts partial sizes
        strategy = "tree" if levels > 1 else "map-reduce"
    summary = state.get("summary") or ""
    if not state.get("chunk_data"):
        summary = "Nothing to summarize: no readable text was found."
    return {
        "summary": summary,
        "strategy": strategy,
        "levels": levels,
        "chunks": len(state.get("chunk_data") or []),
        "llm_calls": sum(int(u.get("llm_calls", 0)) for u in usage),
        "tokens": sum(int(u.get("tokens_in", 0)) + int(u.get("tokens_out", 0)) for u in usage),
        "seconds": round(ctx.clock() - (state.get("started_at") or ctx.clock()), 3),
        "engine": ctx.roles.engine,
    }


# ---------------------------------------------------------------- graph


def build_summarizer_graph(
    deps: SummarizerDeps, *, checkpointer: BaseCheckpointSaver[str] | None = None
) -> CompiledStateGraph[SummarizerState, None, SummarizerInput, SummarizerOutput]:
    """Compile the summarizer state machine over its dependencies (the wiring module calls
    this)."""
    builder = StateGraph(SummarizerState, input_schema=SummarizerInput,
                         output_schema=SummarizerOutput)  # fmt: skip
    kit: NodeKit[SummarizerDeps] = NodeKit(deps)
    builder.add_node("load", kit.node("load", load))
    builder.add_node("split", kit.node("split", split))
    builder.add_node("plan", kit.node("plan", plan))
    builder.add_node("map", kit.node("map", summarize_task))
    builder.add_node("collect", collect)
    builder.add_node("collapse", kit.node("collapse", summarize_task))
    builder.add_node("reduce", kit.node("reduce", reduce))
    builder.add_node("finalize", kit.node("finalize", finalize))
    builder.add_edge(START, "load")
    builder.add_edge("load", "split")
    builder.add_edge("split", "plan")
    builder.add_conditional_edges("plan", after_plan, ["map", "reduce", "finalize"])
    builder.add_edge("map", "collect")
    builder.add_edge("collapse", "collect")
    builder.add_conditional_edges("collect", _after_collect(deps), ["collapse", "reduce"])
    builder.add_edge("reduce", "finalize")
    builder.add_edge("finalize", END)
    return builder.compile(checkpointer=checkpointer, name="ragloom-summarizer")


def build_summarizer(
    settings: Settings | None = None,
    *,
    llm: LLMGateway | BaseChatModel | None = None,
    checkpointer: BaseCheckpointSaver[str] | None = None,
    persist: bool = False,
    max_concurrency: int = 8,
    token_budget: int | None = None,
    chunk_tokens: int = 512,
    chunk_overlap: int = 0,
) -> CompiledStateGraph[SummarizerState, None, SummarizerInput, SummarizerOutput]:
    """A compiled LangGraph summarizer.

    The engine comes from `settings` (extractive with no key; DSPy modules through the gateway
    when a key or base URL is set, or when `llm`, an `LLMGateway` or a LangChain chat model, is
    given). `token_budget` is what one call may read (default: 8,000 tokens for an LLM, 32,000
    for the extractive engine). With `persist` (the settings' checkpointer, or `checkpointer`)
    runs are resumable: give a `thread_id` (to survive a killed process, run with `ainvoke`;
    see the module docstring).

    Use: `graph.invoke({"paths": ["docs/"], "length": "medium"})` or `await graph.ainvoke(...)`
    (async runs map tasks concurrently, at most `max_concurrency` at once).
    """
    from ragloom.graphs.wiring import Wiring

    wiring = Wiring(settings, llm=llm, checkpointer=checkpointer)
    return wiring.summarizer(
        persist=persist or checkpointer is not None, token_budget=token_budget,
        chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap, max_concurrency=max_concurrency,
    )  # fmt: skip


async def make_summarizer() -> (
    CompiledStateGraph[SummarizerState, None, SummarizerInput, SummarizerOutput]
):
    """Entry for `langgraph.json`: LangGraph's server supplies persistence."""
    import asyncio

    from ragloom.graphs.wiring import platform_wiring

    return await asyncio.to_thread(lambda: platform_wiring().summarizer())
