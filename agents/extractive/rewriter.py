"""Query rewriting for the extractive engine.

The first search asks the question as written (the embedding model reads sentences better than
keyword lists). Retries, and follow-ups that lean on the thread, search keywords: the question's
content words (code-ish tokens such as `os.path`, `__init__`, `0x`
kept whole). A follow-up that leans on the thread ("and how do I undo it?") borrows the keywords
of the previous user question. Later attempts broaden: first add word variants, then keep only
the most informative terms. Questions joining two things ("hex and octal", "lists vs tuples")
also get one sub-query per thing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ragloom.agents.roles import Rewrite, Turn
from ragloom.core.text import STOPWORDS, is_code_token, raw_tokens

_PRONOUN = re.compile(
    r"\b(it|its|that|this|these|those|they|them|their|one|ones|same|above|there)\b", re.I
)
_CONTINUATION = re.compile(r"^\s*(and|but|also|so|then|what about|how about|and what|or)\b", re.I)
_JOINERS = frozenset({"and", "or", "vs", "versus"})
_GENERIC = frozenset(
    """python work works working difference different example examples way ways make makes
    happen happens mean means best good better new old call called write create find""".split()  # noqa: SIM905
)
MAX_SUB_QUERIES = 3


def keywords(text: str) -> list[str]:
    """Content words of a text in order, without duplicates; code tokens keep their case."""
    seen: set[str] = set()
    out: list[str] = []
    for token in raw_tokens(text):
        low = token.lower()
        if low in STOPWORDS or low in _JOINERS or (len(low) < 2 and not is_code_token(token)):
            continue
        word = token if is_code_token(token) else low
        if word.lower() not in seen:
            seen.add(word.lower())
            out.append(word)
    return out


def _is_follow_up(question: str, own: list[str]) -> bool:
    return bool(_CONTINUATION.match(question)) or (
        len(own) <= 3 and bool(_PRONOUN.search(question))
    )


def _informative(words: list[str]) -> list[str]:
    """Most informative half (code tokens and long rare-looking words first), in query order."""
    if len(words) <= 2:
        return words
    ranked = sorted(
        words,
        key=lambda w: (is_code_token(w), w.lower() not in _GENERIC, len(w)),
        reverse=True,
    )
    keep = set(ranked[: max(2, (len(words) + 1) // 2)])
    return [w for w in words if w in keep]


def _variants(words: list[str]) -> list[str]:
    extra: list[str] = []
    for word in words:
        if is_code_token(word):
            extra += [p for p in word.split(".") if len(p) > 1 and p not in words]
            continue
        extra.append(_other_number(word))
    return words + [w for w in dict.fromkeys(extra) if w not in words]


def _other_number(word: str) -> str:
    """The plural of a singular word and vice versa (a rough English rule)."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    if word.endswith("y") and len(word) > 3 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    return word + "s"


def _sub_queries(question: str, words: list[str]) -> tuple[str, ...]:
    """One query per conjunct of 'A and B' / 'A vs B', sharing the rest of the question."""
    tokens = raw_tokens(question)
    lowered = [t.lower() for t in tokens]
    conjuncts: list[str] = []
    for i, token in enumerate(lowered):
        if token not in _JOINERS or i == 0 or i + 1 >= len(tokens):
            continue
        left, right = tokens[i - 1], tokens[i + 1]
        for side in (left, right):
            if side.lower() not in STOPWORDS and side not in conjuncts:
                conjuncts.append(side if is_code_token(side) else side.lower())
    conjuncts = [c for c in conjuncts if c in words]
    if len(conjuncts) < 2:
        return ()
    subs = [" ".join(w for w in words if w == c or w not in conjuncts) for c in conjuncts]
    return tuple(subs[:MAX_SUB_QUERIES])


class ExtractiveRewriter:
    """Keyword extraction with thread memory and broadening on retries."""

    engine = "extractive"

    def rewrite(self, question: str, history: Sequence[Turn], attempt: int = 0) -> Rewrite:
        words = keywords(question)
        previous = next((t.content for t in reversed(history) if t.role == "user"), None)
        borrowed = False
        if previous and previous.strip() != question.strip() and _is_follow_up(question, words):
            words += [w for w in keywords(previous) if w.lower() not in {x.lower() for x in words}]
            borrowed = True
        if not words:
            words = raw_tokens(question) or [question.strip()]
        if attempt == 1:
            words = _variants(words)
        elif attempt >= 2:
            words = _informative(words)
        subs = _sub_queries(question, words) if attempt == 0 else ()
        if attempt == 0 and not borrowed:
            # The first search asks the question as written: the embedding model reads whole
            # sentences far better than keyword lists (python-docs citation hit rate 0.61 with
            # keyword queries, see benchmarks/RESULTS.md), and BM25 weighs terms by idf anyway.
            return Rewrite(" ".join(question.split()), subs)
        return Rewrite(" ".join(words), subs)

    async def arewrite(self, question: str, history: Sequence[Turn], attempt: int = 0) -> Rewrite:
        return self.rewrite(question, history, attempt)
