"""The role sets the graphs call, built from objects (never from settings: that is the wiring
module's job, `ragloom.graphs.wiring`).

- `extractive_*_roles()`: the engine with no model.
- `dspy_*_roles(roles)`: the `openai` engine's DSPy programs, from one `build_dspy_roles` result
  shared by both graphs (programs load once per build).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragloom.agents.roles import (
    Answerer,
    Grader,
    GroundingChecker,
    MapSummarizer,
    QueryRewriter,
    ReduceSummarizer,
    Router,
)

if TYPE_CHECKING:
    from ragloom.core.embedders import Embedder


@dataclass
class AssistantRoles:
    """The roles the assistant graph calls."""

    engine: str
    router: Router
    rewriter: QueryRewriter
    grader: Grader
    answerer: Answerer
    grounding: GroundingChecker
    model: str | None = None  # the LLM behind the roles (prices its tokens), None without one


@dataclass
class SummarizerRoles:
    """The roles the summarizer graph calls."""

    engine: str
    map: MapSummarizer
    reduce: ReduceSummarizer


def extractive_assistant_roles(embedder: Embedder | None) -> AssistantRoles:
    """The extractive engine's assistant roles; the answerer ranks sentences with `embedder`
    (the store's, so every path answers alike)."""
    from ragloom.agents import extractive

    return AssistantRoles(
        engine="extractive",
        router=extractive.ExtractiveRouter(),
        rewriter=extractive.ExtractiveRewriter(),
        grader=extractive.ExtractiveGrader(),
        answerer=extractive.ExtractiveAnswerer(embedder=embedder),
        grounding=extractive.ExtractiveGroundingChecker(),
    )


def extractive_summarizer_roles() -> SummarizerRoles:
    """The extractive engine's map and reduce summarizers."""
    from ragloom.agents import extractive

    return SummarizerRoles(
        engine="extractive",
        map=extractive.ExtractiveMapSummarizer(),
        reduce=extractive.ExtractiveReduceSummarizer(),
    )


def dspy_assistant_roles(roles: Mapping[str, Any], model: str) -> AssistantRoles:
    """The assistant's roles from `build_dspy_roles(...)`."""
    return AssistantRoles(
        engine="openai",
        router=roles["router"],
        rewriter=roles["rewriter"],
        grader=roles["grader"],
        answerer=roles["answerer"],
        grounding=roles["grounding"],
        model=model,
    )


def dspy_summarizer_roles(roles: Mapping[str, Any]) -> SummarizerRoles:
    """The summarizer's roles from `build_dspy_roles(...)`."""
    return SummarizerRoles(engine="openai", map=roles["map"], reduce=roles["reduce"])
