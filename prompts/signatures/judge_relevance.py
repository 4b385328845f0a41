"""Judge relevance: does an answer address the question that was asked?"""

from __future__ import annotations

import dspy

from ragloom.prompts.signatures import one_paragraph


@one_paragraph
class JudgeRelevance(dspy.Signature):
    """Judge whether the response addresses the question that was asked, regardless of whether
    it is true. A response that answers a different question, only restates the question, or
    evades it is not relevant. Give a score from 0.0 (ignores the question) to 1.0 (answers
    exactly what was asked)."""

    question: str = dspy.InputField()
    response: str = dspy.InputField(desc="the response to judge")
    relevant: bool = dspy.OutputField()
    score: float = dspy.OutputField(desc="0.0 to 1.0")
