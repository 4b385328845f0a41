"""State, input, output and run context of the summarizer graph.

State is data (chunk dicts, partial summaries, counters) so any checkpointer can store it, and
every list key says how concurrent writes combine: map tasks run in parallel and each appends
its partial summary. The roles live in `SummarizerDeps`, bound to the nodes by the node kit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from typing_extensions import TypedDict

from ragloom.agents.factory import SummarizerRoles

Strategy = Literal["stuff", "map-reduce", "tree"]


def replace(_old: Any, new: Any) -> Any:
    """Reducer for lists written by one node: the newest value wins."""
    return new


def extend_or_reset(old: list[Any] | None, new: list[Any] | None) -> list[Any]:
    """Reducer for lists that parallel tasks append to: a list extends, `None` resets (a new
    run on a finished thread starts clean)."""
    if new is None:
        return []
    return [*(old or []), *new]


class SummarizerInput(TypedDict, total=False):
    """What a caller sends: files/folders (`paths`) and/or in-memory `documents`
    (dicts with `source`, `text`, optional `title`), and the summary length."""

    paths: list[str]
    documents: list[dict[str, Any]]
    length: Literal["short", "medium", "long"]
    title: str


class SummarizerOutput(TypedDict, total=False):
    """What a caller gets back."""

    summary: str
    strategy: Strategy
    chunks: int
    llm_calls: int
    tokens: int
    seconds: float
    engine: str
    sources: list[str]
    errors: list[dict[str, Any]]
    levels: int


class MapTask(TypedDict):
    """The payload a `Send` carries to one map or collapse task."""

    level: int
    index: int
    text: str
    heading: str
    section: str
    length: Literal["short", "medium", "long"]


class SummarizerState(TypedDict, total=False):
    """Everything a run knows; JSON-serialisable so any checkpointer can store it."""

    # input, consumed (cleared) by `load`
    paths: Annotated[list[str], replace]
    documents: Annotated[list[dict[str, Any]], replace]
    length: Literal["short", "medium", "long"]
    title: str
    # the run
    loaded: Annotated[list[dict[str, Any]], replace]
    started_at: float
    sources: Annotated[list[str], replace]
    errors: Annotated[list[dict[str, Any]], replace]
    chunk_data: Annotated[list[dict[str, Any]], replace]
    chunks: int
    total_tokens: int
    strategy: Strategy
    # partial summaries of every level: {level, index, heading, section, summary, tokens}
    partials: Annotated[list[dict[str, Any]], extend_or_reset]
    levels: int
    usage_log: Annotated[list[dict[str, Any]], extend_or_reset]
    summary: str
    llm_calls: int
    tokens: int
    seconds: float
    engine: str


@dataclass
class SummarizerDeps:
    """What the nodes need that is not data (bound when the graph is compiled): the roles and
    the sizes that drive the plan."""

    roles: SummarizerRoles
    token_budget: int = 8_000  # input tokens one map/reduce call may take
    chunk_tokens: int = 512
    chunk_overlap: int = 32
    max_levels: int = 6  # tree collapse levels before reducing anyway
    clock: Callable[[], float] = time.time
