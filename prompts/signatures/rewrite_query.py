"""Rewrite: turn a conversational question into a standalone search query."""

from __future__ import annotations

import dspy

from ragloom.prompts.signatures import one_paragraph


@one_paragraph
class RewriteQuery(dspy.Signature):
    """Rewrite the user's question into a standalone search query for a document retriever.
    Resolve pronouns and references using the history, keep the key technical terms, drop
    politeness and filler. When the question asks several things, also list up to three
    sub-queries. When `attempt_note` says earlier searches found nothing relevant, use different
    words: synonyms, broader or more specific terms."""

    question: str = dspy.InputField(desc="the user's latest message")
    history: str = dspy.InputField(desc="earlier turns of the thread, oldest first; may be empty")
    attempt_note: str = dspy.InputField(desc="earlier search attempts; may be empty")
    query: str = dspy.OutputField(desc="one standalone search query")
    sub_queries: list[str] = dspy.OutputField(desc="up to three sub-queries; empty list if none")
