"""DSPy signatures, one per role; each docstring is the instruction the model sees.

Imported lazily (they import dspy): `get_signature("answer")` or
`from ragloom.prompts.signatures.answer import AnswerQuestion`.
"""

from __future__ import annotations

import importlib
from typing import Any, TypeVar

SIGNATURES: dict[str, str] = {
    "route": "ragloom.prompts.signatures.route:RouteQuestion",
    "rewrite_query": "ragloom.prompts.signatures.rewrite_query:RewriteQuery",
    "grade_document": "ragloom.prompts.signatures.grade_document:GradeDocument",
    "answer": "ragloom.prompts.signatures.answer:AnswerQuestion",
    "check_grounding": "ragloom.prompts.signatures.check_grounding:CheckGrounding",
    "judge_relevance": "ragloom.prompts.signatures.judge_relevance:JudgeRelevance",
    "summarize_chunk": "ragloom.prompts.signatures.summarize_chunk:SummarizeChunk",
    "combine_summaries": "ragloom.prompts.signatures.combine_summaries:CombineSummaries",
    "rerank": "ragloom.prompts.signatures.rerank:RerankPassages",
}


T = TypeVar("T")


def one_paragraph(cls: T) -> T:
    """Class decorator: the docstring's line breaks and indentation become single spaces, so the
    model sees the instruction as one clean paragraph (Python 3.11 keeps docstring indentation).
    """
    cls.__doc__ = " ".join((cls.__doc__ or "").split())
    return cls


def get_signature(name: str) -> Any:
    """The Signature class registered under `name` (a key of `SIGNATURES`)."""
    try:
        target = SIGNATURES[name]
    except KeyError:
        raise KeyError(f"unknown signature {name!r}; known: {sorted(SIGNATURES)}") from None
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)
