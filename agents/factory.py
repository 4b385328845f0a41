"""Build the agent roles for an engine: the extractive engine (no model) or DSPy modules
(`openai` engine) over the gateway's DSPy LM, with compiled artefacts loaded by the registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agents.roles import (
    Answerer,
    Grader,
    GroundingChecker,
    MapSummarizer,
    QueryRewriter,
    ReduceSummarizer,
    Router,
)

if TYPE_CHECKING:
    from core.embedders import Embedder
    from core.settings import Settings


@dataclass
class AssistantRoles:
    """The roles the assistant graph calls."""

    engine: str
    router: Router
    rewriter: QueryRewriter
    grader: Grader
    answerer: Answerer
    grounding: GroundingChecker


@dataclass
class SummarizerRoles:
    """The roles the summarizer graph calls."""

    engine: str
    map: MapSummarizer
    reduce: ReduceSummarizer


def extractive_assistant_roles(embedder: Embedder | None = None) -> AssistantRoles:
    """The extractive engine: sentence selection, keyword rewriting, overlap grading, rules."""
    from agents import extractive

    return AssistantRoles(
        engine="extractive",
        router=extractive.ExtractiveRouter(),
        rewriter=extractive.ExtractiveRewriter(),
        grader=extractive.ExtractiveGrader(),
        answerer=extractive.ExtractiveAnswerer(embedder=embedder),
        grounding=extractive.ExtractiveGroundingChecker(),
    )


def dspy_assistant_roles(lm: Any, settings: Settings | None = None) -> AssistantRoles:
    """The `openai` engine: DSPy modules over the gateway's LM, compiled artefacts when present."""
    from agents.dspy_modules import build_dspy_roles

    roles = build_dspy_roles(lm, settings=settings)
    return AssistantRoles(
        engine="openai",
        router=roles["router"],
        rewriter=roles["rewriter"],
        grader=roles["grader"],
        answerer=roles["answerer"],
        grounding=roles["grounding"],
    )


def extractive_summarizer_roles(embedder: Embedder | None = None) -> SummarizerRoles:
    from agents import extractive

    return SummarizerRoles(
        engine="extractive",
        map=extractive.ExtractiveMapSummarizer(),
        reduce=extractive.ExtractiveReduceSummarizer(),
    )


def dspy_summarizer_roles(lm: Any, settings: Settings | None = None) -> SummarizerRoles:
    from agents.dspy_modules import build_dspy_roles

    roles = build_dspy_roles(lm, settings=settings)
    return SummarizerRoles(engine="openai", map=roles["map"], reduce=roles["reduce"])
