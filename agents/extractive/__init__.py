"""The extractive engine: every agent role without a model (no key, no network).

Answers are the best-supported sentences of the retrieved chunks, with citations; summaries are
centroid/TextRank sentence selection with a position prior and MMR; query rewriting is keyword
extraction; grading uses retrieval scores and term overlap. Every role says `engine = "extractive"`.
"""

from ragloom.agents.extractive.answerer import NO_ANSWER, ExtractiveAnswerer
from ragloom.agents.extractive.grader import ExtractiveGrader
from ragloom.agents.extractive.grounding import ExtractiveGroundingChecker
from ragloom.agents.extractive.rewriter import ExtractiveRewriter
from ragloom.agents.extractive.router import ExtractiveRouter
from ragloom.agents.extractive.summarizer import ExtractiveMapSummarizer, ExtractiveReduceSummarizer

__all__ = [
    "NO_ANSWER",
    "ExtractiveAnswerer",
    "ExtractiveGrader",
    "ExtractiveGroundingChecker",
    "ExtractiveMapSummarizer",
    "ExtractiveReduceSummarizer",
    "ExtractiveRewriter",
    "ExtractiveRouter",
]
