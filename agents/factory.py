"""Build the agent roles for an engine: the extractive engine (no model) or DSPy modules
(`openai` engine) over the gateway's DSPy LM, with compiled artefacts loaded by the registry."""

from __future__ import annotations

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
    from ragloom.core.settings import Settings


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


def engine_lm(settings: Settings, llm: Any = None) -> Any:
    """The DSPy LM the `openai` engine's roles call, or None when the extractive engine runs
    (no `llm` given and settings pick `extractive`)."""
    if llm is None and settings.resolved_engine == "extractive":
        return None
    from ragloom.core.llm import dspy_lm_for

    return dspy_lm_for(llm, settings.llm)


def assistant_roles(
    settings: Settings, *, llm: Any = None, embedder: Embedder | None = None
) -> AssistantRoles:
    """The assistant's roles for the engine `settings` and `llm` pick."""
    lm = engine_lm(settings, llm)
    if lm is None:
        from ragloom.agents import extractive

        return AssistantRoles(
            engine="extractive",
            router=extractive.ExtractiveRouter(),
            rewriter=extractive.ExtractiveRewriter(),
            grader=extractive.ExtractiveGrader(),
            answerer=extractive.ExtractiveAnswerer(embedder=embedder),
            grounding=extractive.ExtractiveGroundingChecker(),
        )
    from ragloom.agents.dspy_modules import build_dspy_roles

    roles = build_dspy_roles(lm, settings=settings)
    return AssistantRoles(
        engine="openai",
        router=roles["router"],
        rewriter=roles["rewriter"],
        grader=roles["grader"],
        answerer=roles["answerer"],
        grounding=roles["grounding"],
        model=str(lm.model),
    )


def summarizer_roles(settings: Settings, *, llm: Any = None) -> SummarizerRoles:
    """The summarizer's map and reduce roles for the engine `settings` and `llm` pick."""
    lm = engine_lm(settings, llm)
    if lm is None:
        from ragloom.agents import extractive

        return SummarizerRoles(
            engine="extractive",
            map=extractive.ExtractiveMapSummarizer(),
            reduce=extractive.ExtractiveReduceSummarizer(),
        )
    from ragloom.agents.dspy_modules import build_dspy_roles

    roles = build_dspy_roles(lm, settings=settings)
    return SummarizerRoles(engine="openai", map=roles["map"], reduce=roles["reduce"])
