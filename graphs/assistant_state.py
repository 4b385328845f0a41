"""State, input, output, run context and dependencies of the assistant graph.

- `AssistantState` is data only (ids, text, scores, citations, counters), so any checkpointer
  stores it. The conversation is `messages`: LangChain messages with `add_messages`, as every
  LangGraph client (SDK, Studio, Agent Chat UI) sends and renders them.
- `AssistantContext` is the per-run context (`context_schema`): plain, optional values a caller
  or LangGraph's server may pass as a dict (`invoke(..., context={"tenant": "acme"})`).
- `AssistantDeps` holds what is not data (store, roles, clock, ...). The wiring module
  (`ragloom.graphs.wiring`) builds it and binds it to the nodes when the graph is compiled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from ragloom.agents.factory import AssistantRoles
from ragloom.core.settings import BudgetSettings, RetrievalSettings
from ragloom.tools.rerank import Reranker
from ragloom.tools.stores.base import ChunkStore

ReviewPoint = Literal["query", "passages", "answer", "clarify"]
REVIEW_POINTS: tuple[ReviewPoint, ...] = ("query", "passages", "answer", "clarify")


def replace(_old: Any, new: Any) -> Any:
    """Reducer for per-turn lists: the newest value wins."""
    return new


def extend_or_reset(old: list[Any] | None, new: list[Any] | None) -> list[Any]:
    """Reducer for per-turn logs: `None` resets, a list extends."""
    if new is None:
        return []
    return [*(old or []), *new]


class AssistantInput(TypedDict, total=False):
    """What a caller sends: LangChain messages (the newest human message is the question), or
    `question` as a shorthand. The thread comes from `config["configurable"]["thread_id"]`."""

    messages: Annotated[list[AnyMessage], add_messages]
    question: str


class AssistantOutput(TypedDict, total=False):
    """What a caller gets back: the thread's messages (the last is the cited answer, an
    `AIMessage`) and the same answer as plain keys."""

    messages: Annotated[list[AnyMessage], add_messages]
    answer: str
    citations: list[dict[str, Any]]
    engine: str
    route: str
    caveat: str | None
    usage: dict[str, Any]


class AssistantState(TypedDict, total=False):
    """The whole state: the thread (`messages`) plus the current turn's working data."""

    # the thread: kept across turns (bounded by deps.max_messages)
    messages: Annotated[list[AnyMessage], add_messages]
    open_turn: str | None  # id of the human message whose turn has not finished
    # the current turn
    run_id: str
    question: str
    route: str
    route_reason: str
    target: str | None
    query: str
    sub_queries: Annotated[list[str], replace]
    tried_queries: Annotated[list[str], replace]
    seen_results: Annotated[list[str], replace]
    chunks: Annotated[list[dict[str, Any]], replace]
    relevant: Annotated[list[dict[str, Any]], replace]
    draft: dict[str, Any] | None
    verdicts: Annotated[list[dict[str, Any]], replace]
    rewrites: int
    regenerations: int
    steps: int
    started_at: float
    next_step: str
    stop_reason: str | None
    caveat: str | None
    answer: str
    citations: Annotated[list[dict[str, Any]], replace]
    engine: str
    usage_log: Annotated[list[dict[str, Any]], extend_or_reset]
    usage: dict[str, Any]


@dataclass
class AssistantContext:
    """Per-run options (LangGraph's `context_schema`); every field is optional data.

    - `tenant`: whose documents to search (default: the one the graph was built for)
    - `review`: human-in-the-loop review points for this run (see docs/human-in-the-loop.md):
      `query` (approve/edit the search query), `passages` (approve/drop retrieved passages),
      `answer` (approve/edit the draft), `clarify` (ask the user when nothing relevant is found)
    """

    tenant: str | None = None
    review: list[ReviewPoint] = field(default_factory=list)


@dataclass
class AssistantDeps:
    """What the nodes need that is not data, bound when the graph is compiled."""

    store: ChunkStore
    roles: AssistantRoles
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    summarizer: Any = None  # a compiled summarizer graph, for the `summarize` route
    tenant: str | None = None
    review: tuple[ReviewPoint, ...] = ()  # review points on for every run
    min_relevant: int = 1
    speculative: bool = False  # answer beside the first grading (LLM engines: one wave less)
    max_regenerations: int = 1
    max_messages: int = 100  # messages kept in a thread's checkpoint (older ones are removed)
    history_turns: int = 6  # earlier turns the roles see
    clock: Callable[[], float] = time.monotonic
    price: Callable[[int, int], float | None] | None = None
    reranker: Reranker | None = None  # reorders the fused chunks (None: the fused order)
