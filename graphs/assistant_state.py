"""State, input, output and run context of the assistant graph.

State is data (ids, text, scores, citations, counters) so any checkpointer can store it; the
store, roles and clock live in `AssistantContext`, read by nodes through `Runtime`.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from ragloom.agents.factory import AssistantRoles
from ragloom.core.settings import BudgetSettings, RetrievalSettings
from ragloom.tools.stores.base import ChunkStore


def replace(_old: Any, new: Any) -> Any:
    """Reducer for per-turn lists: the newest value wins."""
    return new


def extend_or_reset(old: list[Any] | None, new: list[Any] | None) -> list[Any]:
    """Reducer for per-turn logs: `None` resets, a list extends."""
    if new is None:
        return []
    return [*(old or []), *new]


class AssistantInput(TypedDict):
    """What a caller sends: one question (the thread comes from `thread_id`)."""

    question: str


class AssistantOutput(TypedDict, total=False):
    """What a caller gets back."""

    answer: str
    citations: list[dict[str, Any]]
    engine: str
    route: str
    caveat: str | None
    usage: dict[str, Any]


class AssistantState(TypedDict, total=False):
    # the thread: kept across turns
    messages: Annotated[list[dict[str, Any]], operator.add]
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
    """Run context: everything a node needs that is not data."""

    store: ChunkStore
    roles: AssistantRoles
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    summarizer: Any = None  # a compiled summarizer graph, used for the `summarize` route
    tenant: str | None = None
    min_relevant: int = 1
    max_regenerations: int = 1
    clock: Callable[[], float] = time.monotonic
    price: Callable[[int, int], float | None] | None = None
