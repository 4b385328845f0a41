"""The DSPy programs behind each role, and the text helpers that feed them.

A *program* is a `dspy.Module` over one signature from `ragloom.prompts.signatures`; it is what
`ragloom compile` optimizes and what `prompts/compiled/<module>/` stores. The agents layer wraps
programs in role classes (chunks in, `Draft`/`Verdict` out); the formatting helpers live here so
the datasets, the compile runner and the agents quote context the same way.

Retrieved text is always quoted as data: each passage carries a short label (`c1`, `c2`, ...)
and any ChatAdapter field marker inside it is defused. Passage labels are unforgeable by content:
anything in quoted text (or in a source name or heading) shaped like a label or a citation
(`[c2]`, `[c1, c3]`, `[<chunk id>]`) is re-written as `(c2)` before it reaches a prompt, so
every `[cN]` a model sees opens a real passage.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import dspy

from ragloom.core.documents import Chunk

_MARKER = re.compile(r"\[\[\s*##")
_CITE = re.compile(r"\[([A-Za-z0-9_\-]+(?:\s*,\s*[A-Za-z0-9_\-]+)*)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)|\n+")
_CITE_MARK = re.compile(r"\s*\[(?:c\d+|[0-9a-f]{24})(?:\s*,\s*(?:c\d+|[0-9a-f]{24}))*\]")
_LEADING_CITES = re.compile(r"^((?:\[[A-Za-z0-9_,\s\-]+\]\s*)+)")
_LABEL_TOKEN = r"(?:c\s*\d+|[0-9a-f]{24})"
_LABEL_LIKE = re.compile(
    rf"\[\s*({_LABEL_TOKEN}(?:\s*[,;]\s*{_LABEL_TOKEN})*)\s*\]", re.IGNORECASE
)
_BRACKETED = re.compile(r"\[([^\[\]\n]{1,200})\]")


class SignatureProgram(dspy.Module):
    """One `dspy.Predict` over one signature; sync `forward` and async `aforward`."""

    def __init__(self, signature: type[dspy.Signature]) -> None:
        super().__init__()
        self.predict = dspy.Predict(signature)

    def forward(self, **inputs: Any) -> dspy.Prediction:
        return self.predict(**inputs)

    async def aforward(self, **inputs: Any) -> dspy.Prediction:
        return await self.predict.acall(**inputs)


def make_adapter() -> Any:
    """The one adapter every role, compile run and evaluation uses: ChatAdapter without the
    JSON retry, so a malformed reply costs one call (and call counts stay predictable)."""
    from ragloom.core.dspy_lm import CachingChatAdapter  # system message built once per signature

    return CachingChatAdapter(use_json_adapter_fallback=False)


@dataclass(frozen=True)
class ModuleSpec:
    """A compilable module: its signature key and which fields a dataset maps to."""

    name: str
    signature: str
    factory: Callable[[], dspy.Module]


def _signature_program(key: str) -> Callable[[], dspy.Module]:
    def build() -> dspy.Module:
        from ragloom.prompts.signatures import get_signature

        return SignatureProgram(get_signature(key))

    return build


def _judge(kind: str, key: str) -> Callable[[], dspy.Module]:
    def build() -> dspy.Module:
        from ragloom.prompts.metrics import FaithfulnessJudge, RelevanceJudge
        from ragloom.prompts.signatures import get_signature

        if kind == "faithfulness":
            return FaithfulnessJudge()
        return RelevanceJudge(get_signature(key))

    return build


MODULES: dict[str, ModuleSpec] = {
    spec.name: spec
    for spec in (
        ModuleSpec("router", "route", _signature_program("route")),
        ModuleSpec("rewriter", "rewrite_query", _signature_program("rewrite_query")),
        ModuleSpec("grader", "grade_document", _judge("relevance", "grade_document")),
        ModuleSpec("answerer", "answer", _signature_program("answer")),
        ModuleSpec("grounding", "check_grounding", _judge("faithfulness", "check_grounding")),
        ModuleSpec("relevance_judge", "judge_relevance", _judge("relevance", "judge_relevance")),
        ModuleSpec("map_summarizer", "summarize_chunk", _signature_program("summarize_chunk")),
        ModuleSpec(
            "reduce_summarizer", "combine_summaries", _signature_program("combine_summaries")
        ),
        ModuleSpec("reranker", "rerank", _signature_program("rerank")),
    )
}


def module_spec(name: str) -> ModuleSpec:
    """The spec of a module name (`answerer`, `rewriter`, ...), or KeyError listing the names."""
    try:
        return MODULES[name]
    except KeyError:
        raise KeyError(f"unknown module {name!r}; known: {', '.join(MODULES)}") from None


def build_program(name: str) -> dspy.Module:
    """A fresh, uncompiled program for a module name."""
    return module_spec(name).factory()


def signature_fingerprint(signature: type[dspy.Signature]) -> dict[str, Any]:
    """What identifies a signature's prompt: instructions plus each field's name, role, type,
    prefix and description."""
    fields = []
    for role, group in (("input", signature.input_fields), ("output", signature.output_fields)):
        for name, info in group.items():
            extra = info.json_schema_extra or {}
            fields.append(
                {
                    "name": name,
                    "role": role,
                    "type": str(info.annotation),
                    "prefix": extra.get("prefix", ""),
                    "desc": extra.get("desc", ""),
                }
            )
    return {"instructions": signature.instructions, "fields": fields}


def program_signature_hash(program: dspy.Module) -> str:
    """Hash of every predictor's signature fingerprint, in predictor order (16 hex chars)."""
    parts = {
        name: signature_fingerprint(predictor.signature)
        for name, predictor in program.named_predictors()
    }
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def module_signature_hash(name: str) -> str:
    """Signature hash of a module as the code defines it now."""
    return program_signature_hash(build_program(name))


# ---- quoting context -------------------------------------------------------------------------


def defuse(text: str) -> str:
    """Neutralise ChatAdapter field markers inside quoted text so data cannot open a field."""
    return _MARKER.sub("[ [ ##", text)


def escape_labels(text: str, ids: Iterable[str] = ()) -> str:
    """`text` with everything shaped like a passage label or citation re-written so it cannot
    pass for one: `[c2]` -> `(c2)`, `[c1, c3]` -> `(c1, c3)`, `[<chunk id>]` -> `(<chunk id>)`
    (also for any of `ids`, the chunk ids quoted alongside)."""
    text = _LABEL_LIKE.sub(r"(\1)", text)
    known = {i.lower() for i in ids if i}
    if not known:
        return text

    def relabel(match: re.Match[str]) -> str:
        tokens = [t.strip().lower() for t in re.split(r"[,;]", match.group(1))]
        return f"({match.group(1)})" if all(t in known for t in tokens) else match.group(0)

    return _BRACKETED.sub(relabel, text)


def quote_text(text: str, ids: Iterable[str] = ()) -> str:
    """Document text as prompt data: field markers defused, label look-alikes escaped."""
    return defuse(escape_labels(text, ids))


def chunk_labels(chunks: Sequence[Chunk]) -> dict[str, str]:
    """Short prompt labels for chunks, in order: {"c1": chunk_id, ...}."""
    return {f"c{i}": chunk.id for i, chunk in enumerate(chunks, start=1)}


def _header_text(text: str, ids: Iterable[str]) -> str:
    """A source name or heading for a passage header: one line, no label look-alikes."""
    return quote_text(" ".join(text.split()), ids)


def format_passage(chunk: Chunk, label: str | None = None, ids: Iterable[str] = ()) -> str:
    """One passage quoted as data: `[label] (source — heading)` then its text. Nothing in the
    source, heading or text can read as another passage's header (see `escape_labels`)."""
    known = {chunk.id, *ids}
    where = _header_text(chunk.source, known)
    if chunk.heading_path:
        where += f" — {_header_text(chunk.heading, known)}"
    head = f"[{label}] ({where})" if label else f"({where})"
    return f"{head}\n{quote_text(chunk.text.strip(), known)}"


def format_context(chunks: Sequence[Chunk]) -> str:
    """All passages, labelled c1..cN in the given order, separated by blank lines."""
    labels = list(chunk_labels(chunks))
    ids = [c.id for c in chunks]
    return "\n\n".join(
        format_passage(c, lab, ids) for c, lab in zip(chunks, labels, strict=True)
    )


class TurnLike(Protocol):
    """Anything with a role and a content, like `ragloom.agents.roles.Turn`."""

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...


def format_history(history: Iterable[TurnLike], max_turns: int = 6) -> str:
    """The last `max_turns` turns as `role: text` lines (empty string for no history)."""
    turns = list(history)[-max_turns:]
    return "\n".join(f"{t.role}: {quote_text(t.content.strip())}" for t in turns)


# ---- reading citations back --------------------------------------------------------------------


def cited_ids(text: str, labels: dict[str, str], known_ids: Iterable[str] = ()) -> list[str]:
    """Chunk ids cited in `text` as `[c1]`, `[c1, c2]` or `[<chunk id>]`, first mention first."""
    known = set(known_ids) | set(labels.values())
    found: list[str] = []
    for match in _CITE.finditer(text):
        for token in (t.strip() for t in match.group(1).split(",")):
            chunk_id = (
                labels.get(token)
                or labels.get(token.lower())
                or (token if token in known else None)
            )
            if chunk_id and chunk_id not in found:
                found.append(chunk_id)
    return found


def number_citations(text: str, labels: dict[str, str], order: Sequence[str]) -> str:
    """Rewrite citation markers as footnote numbers: `[c3]` -> `[1]` when the chunk behind c3 is
    the first in `order` (the draft's citations), as the extractive engine writes them. Markers
    naming no known chunk but shaped like labels are dropped; other brackets are left alone."""
    number = {chunk_id: i for i, chunk_id in enumerate(order, start=1)}

    def replace(match: re.Match[str]) -> str:
        tokens = [t.strip() for t in match.group(1).split(",")]
        ids = [labels.get(t) or labels.get(t.lower()) or t for t in tokens]
        if all(i in number for i in ids):
            return "".join(f"[{number[i]}]" for i in dict.fromkeys(ids))
        if all(_CITE_MARK.fullmatch(f"[{t}]") for t in tokens):
            return ""
        return match.group(0)

    text = _CITE.sub(replace, text)
    return re.sub(r"[ \t]+([.,;:!?])", r"\1", text).strip()


def strip_citations(text: str) -> str:
    """The text without citation markers (only markers that look like citations)."""
    return _CITE_MARK.sub("", text).strip()


def split_claims(text: str, labels: dict[str, str]) -> list[tuple[str, list[str]]]:
    """Sentences of an answer with the chunk ids each cites. A marker that opens a sentence
    (`... end. [c1] Next`) belongs to the sentence before it."""
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]
    claims: list[tuple[str, list[str]]] = []
    for raw in sentences:
        sentence = raw
        lead = _LEADING_CITES.match(sentence)
        if lead and claims:
            prev_text, prev_ids = claims[-1]
            extra = [i for i in cited_ids(lead.group(1), labels) if i not in prev_ids]
            claims[-1] = (prev_text, prev_ids + extra)
            sentence = sentence[lead.end() :]
        if not sentence.strip():
            continue
        claims.append((strip_citations(sentence), cited_ids(sentence, labels)))
    return [(s, ids) for s, ids in claims if s]


def best_quote(chunk_text: str, claim: str, max_chars: int = 240) -> str:
    """The chunk sentence sharing most words with the claim (the quoted span of a citation)."""
    words = set(re.findall(r"\w+", claim.lower()))
    candidates = [s.strip() for s in _SENTENCE_END.split(chunk_text) if s.strip()] or [chunk_text]
    best = max(candidates, key=lambda s: len(words & set(re.findall(r"\w+", s.lower()))))
    return best[:max_chars]
