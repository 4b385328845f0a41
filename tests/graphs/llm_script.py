"""Script the local OpenAI-compatible server as the assistant's LLM, reply by role."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ragloom.prompts.testing import chat_reply, input_field

# an output field that only one role's signature has, as DSPy lists it in the system message
ROLE_MARKERS = {
    "router": "`route`",
    "rewriter": "`sub_queries`",
    "grader": "`passage`",
    "grounding": "`grounded`",
    "answerer": "`feedback`",
    "relevance_judge": "`response`",
}


def role_of(request: dict[str, Any]) -> str:
    system = str(request["messages"][0].get("content", ""))
    for role, marker in ROLE_MARKERS.items():
        if marker in system:
            return role
    raise AssertionError(f"unrecognised prompt: {system[:200]}")


@dataclass
class AssistantLLM:
    """Per-role reply functions of the call index; counts calls per role."""

    route: str = "retrieve"
    queries: Callable[[int], str] = lambda i: "octal literals"
    relevant: Callable[[int, str], bool] = lambda i, passage: True
    grounded: Callable[[int], bool] = lambda i: True
    answer: str = "Octal literals start with 0o [c0]."
    calls: Counter[str] = field(default_factory=Counter)

    def __call__(self, request: dict[str, Any]) -> str:
        role = role_of(request)
        index = self.calls[role]
        self.calls[role] += 1
        if role == "router":
            return chat_reply(route=self.route, reason="scripted", target="")
        if role == "rewriter":
            return chat_reply(query=self.queries(index), sub_queries=[])
        if role == "grader":
            ok = self.relevant(index, input_field(request, "passage"))
            return chat_reply(relevant=ok, score=0.9 if ok else 0.1)
        if role == "relevance_judge":
            return chat_reply(relevant=True, score=0.8)
        if role == "grounding":
            ok = self.grounded(index)
            claims = [] if ok else ["Octal literals start with 0o"]
            return chat_reply(grounded=ok, unsupported_claims=claims, score=1.0 if ok else 0.0)
        return chat_reply(answer=self.answer)
