"""Route: decide what the assistant should do with the user's latest message."""

from __future__ import annotations

from typing import Literal

import dspy

from ragloom.prompts.signatures import one_paragraph


@one_paragraph
class RouteQuestion(dspy.Signature):
    """Decide how an assistant over a private document collection should handle the user's
    latest message. Choose `retrieve` for questions that need facts from the documents,
    `summarize` when the user asks for a summary of a document (put the document's name or path
    in `target`), `conversation` for greetings, thanks or questions about the conversation itself,
    and `decline` for requests that are harmful or clearly outside what the documents could cover.
    When unsure, choose `retrieve`."""

    question: str = dspy.InputField(desc="the user's latest message")
    history: str = dspy.InputField(desc="earlier turns of the thread, oldest first; may be empty")
    route: Literal["conversation", "retrieve", "summarize", "decline"] = dspy.OutputField()
    reason: str = dspy.OutputField(desc="one short sentence explaining the choice")
    target: str = dspy.OutputField(desc="for summarize: the document the user named; else empty")
