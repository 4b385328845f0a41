"""A scripted 'model' for compile tests: it answers well only when the prompt has demos.

Served by the real OpenAI-compatible test server, so the gateway, DSPy's ChatAdapter and the
optimizers all run for real; replies follow ChatAdapter's format
(`ragloom.prompts.testing.chat_reply`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ragloom.core.documents import Chunk
from ragloom.prompts.testing import chat_reply, has_demos, input_field

FACTS = {
    "What colour is the sky?": "The sky is blue",
    "What do cows drink?": "Cows drink water",
    "Which planet is the largest?": "Jupiter is the largest planet",
    "What is the capital of France?": "Paris is the capital of France",
    "How many legs has a spider?": "A spider has eight legs",
    "What does a compiler do?": "A compiler translates source code into machine code",
    "Which gas do plants absorb?": "Plants absorb carbon dioxide",
    "What is frozen water called?": "Frozen water is called ice",
    "Who wrote Hamlet?": "Shakespeare wrote Hamlet",
    "What is the boiling point of water?": "Water boils at one hundred degrees Celsius",
}


def answer_rows() -> list[dict[str, Any]]:
    """JSONL rows for the answerer: question, context (one labelled passage), answer."""
    rows = []
    for i, (question, fact) in enumerate(FACTS.items()):
        rows.append(
            {
                "id": f"q{i}",
                "question": question,
                "context": f"[c1] (facts.txt)\n{fact}.",
                "answer": f"{fact} [c1].",
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def answerer_responder(request: dict[str, Any]) -> str:
    """Good answer with demos in the prompt, an evasive one without."""
    question = input_field(request, "question")
    if has_demos(request) and question in FACTS:
        return chat_reply(answer=f"{FACTS[question]} [c1].")
    return chat_reply(answer="I am not sure.")


def fact_chunks(question: str) -> list[Chunk]:
    """What a retriever returns for a question of FACTS (for question-directory datasets)."""
    fact = FACTS.get(question, "Nothing here.")
    return [Chunk(id=f"{abs(hash(fact)) % 10**24:024d}", source="facts.txt", text=fact + ".")]


# Rows per module: inputs, the right outputs, and what the model says without demos.
MODULE_ROWS: dict[str, tuple[str, list[dict[str, Any]], dict[str, Any]]] = {
    "rewriter": (
        "question",
        [
            {
                "question": f"and what about {topic}?",
                "history": "user: tell me about python",
                "query": f"python {topic}",
                "sub_queries": [],
            }
            for topic in (
                "lists",
                "dicts",
                "sets",
                "tuples",
                "strings",
                "bytes",
                "files",
                "classes",
            )
        ],
        {"query": "something", "sub_queries": []},
    ),
    "grader": (
        "passage",
        [
            {
                "question": "How do lists work?",
                "passage": f"passage {i}: " + text,
                "relevant": relevant,
                "score": float(relevant),
            }
            for i, (text, relevant) in enumerate(
                [("Lists are mutable sequences.", True), ("Cats sleep a lot.", False)] * 4
            )
        ],
        {"relevant": True, "score": 1.0},
    ),
    "map_summarizer": (
        "text",
        [
            {
                "heading": f"Part {i}",
                "text": f"Section {i} explains {w} in depth, with examples.",
                "length": "short",
                "summary": f"Section {i} explains {w}.",
            }
            for i, w in enumerate(
                ["lists", "dicts", "sets", "loops", "classes", "files", "modules", "errors"]
            )
        ],
        {"summary": "This is a summary."},
    ),
}


def module_responder(module: str) -> Any:
    """Right outputs (looked up by one input field) when the prompt has demos, else wrong."""
    key_field, rows, wrong = MODULE_ROWS[module]
    answers = {row[key_field]: row for row in rows}

    def respond(request: dict[str, Any]) -> str:
        from ragloom.prompts.testing import reply_for

        row = answers.get(input_field(request, key_field))
        return reply_for(request, row if has_demos(request) and row else wrong)

    return respond
