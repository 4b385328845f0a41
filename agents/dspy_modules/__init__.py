"""DSPy implementations of the agent roles (the `openai` engine).

`build_dspy_roles(lm)` gives one role object per role name; with a prompt registry it loads each
module's compiled artefact when one matches. Importing this package is cheap: dspy loads when a
role is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragloom.prompts.registry import PromptRegistry

__all__ = [
    "DSPyAnswerer",
    "DSPyGrader",
    "DSPyGroundingChecker",
    "DSPyMapSummarizer",
    "DSPyReduceSummarizer",
    "DSPyRewriter",
    "DSPyRouter",
    "build_dspy_roles",
]


def build_dspy_roles(
    lm: Any, *, registry: PromptRegistry | None = None, settings: Any = None
) -> dict[str, Any]:
    """Role objects keyed `router, rewriter, grader, answerer, grounding, map_summarizer,
    reduce_summarizer` (plus the aliases `map` and `reduce`), all calling `lm` (a `dspy.BaseLM`).

    With a `registry` (or `settings`, whose `prompts` section builds one), each program is the
    pinned artefact or the newest compiled one whose signature matches; else the fresh program.
    A malformed reply is asked again once, unless `settings.llm.max_retries` is 0 (no retries
    at all, as configured).
    """
    from ragloom.agents.dspy_modules.roles import PARSE_RETRIES, ROLE_CLASSES

    retries = PARSE_RETRIES
    if settings is not None and getattr(getattr(settings, "llm", None), "max_retries", 1) == 0:
        retries = 0

    if registry is None and settings is not None:
        from ragloom.prompts.registry import PromptRegistry

        registry = PromptRegistry.from_settings(settings)
    roles: dict[str, Any] = {}
    for name, cls in ROLE_CLASSES.items():
        program = registry.load(name) if registry is not None else None
        roles[name] = cls(lm, program, parse_retries=retries)
    roles["map"] = roles["map_summarizer"]
    roles["reduce"] = roles["reduce_summarizer"]
    return roles


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ragloom.agents.dspy_modules import roles

        return getattr(roles, name)
    raise AttributeError(name)
