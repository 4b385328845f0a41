"""Rule-based routing for the extractive engine: decline, conversation, summarize or retrieve."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ragloom.agents.roles import RouteDecision, Turn
from ragloom.core.text import STOPWORDS, raw_tokens

_GREETING = re.compile(
    r"^(hi|hello|hey|hiya|howdy|yo|good (morning|afternoon|evening|day)|greetings)"
    r"( there| all| everyone| bot| assistant)?[\s!.,?]*$",
    re.IGNORECASE,
)
_THANKS = re.compile(
    r"^(thanks|thank you|thx|ty|cheers|great|perfect|awesome|nice|ok(ay)?|cool|got it)"
    r"([\s,!.]+(so much|a lot|very much|again|that helps|that helped|!)*)*[\s!.]*$",
    re.IGNORECASE,
)
_CHITCHAT = re.compile(
    r"^(how are you|how's it going|what'?s up|who are you|what are you|are you (a )?(human|bot|"
    r"real)|tell me a joke|what('?s| is) the weather|what time is it|what('?s| is) your name|"
    r"do you like|i love you|bye|goodbye|see you)\b",
    re.IGNORECASE,
)
_ABUSE = re.compile(
    r"\b(fuck\w*|shit\w*|bitch\w*|asshole\w*|bastard\w*|cunt\w*|dickhead\w*|idiot|stupid bot|"
    r"moron|retard\w*)\b",
    re.IGNORECASE,
)
_FOLLOW_UP = re.compile(
    r"^(can you |could you |please |now )*(say|put|make|rephrase|reword|repeat|restate|"
    r"explain|simplify|shorten|expand|summari[sz]e|translate)\b.{0,20}\b(that|it|this|your "
    r"(answer|reply|response)|the (answer|above|last))\b|^(shorter|longer|simpler|in (one|a|"
    r"two|few) (sentence|line|word)s?|tl;?dr|eli5|more detail|go on|continue|and\??)"
    r"[\s.!?,]*(please)?[\s.!?]*$",
    re.IGNORECASE,
)
_SUMMARIZE = re.compile(
    r"^\s*(please\s+|can you\s+|could you\s+)?(summari[sz]e|give (me )?(a |an )?(summary|"
    r"overview) of|tl;?dr( of)?|sum up)\b[\s:,-]*(?P<target>.*?)[\s?.!]*$",
    re.IGNORECASE,
)
_TARGET_NOISE = re.compile(
    r"^(for me\s+|please\s+)?(the |this |that |a )?(document|file|page|doc|article)?\s*"
    r"(called |named |titled )?",
    re.IGNORECASE,
)


class ExtractiveRouter:
    """Routes by rules: no model, deterministic, cheap."""

    engine = "extractive"

    def route(self, question: str, history: Sequence[Turn]) -> RouteDecision:
        text = question.strip()
        if not text or not any(ch.isalnum() for ch in text):
            return RouteDecision("decline", "empty question")
        if _ABUSE.search(text):
            return RouteDecision("decline", "abusive message")
        has_answer = any(t.role == "assistant" for t in history)
        if _THANKS.match(text):
            return RouteDecision("conversation", "acknowledgement")
        if has_answer and _FOLLOW_UP.search(text):
            return RouteDecision("conversation", "follow-up about the previous answer")
        summarize = _SUMMARIZE.match(text)
        if summarize:
            target = _clean_target(summarize.group("target"))
            if target is None and has_answer:
                return RouteDecision("conversation", "summarize the previous answer")
            return RouteDecision("summarize", "summary requested", target)
        if _GREETING.match(text):
            return RouteDecision("decline", "greeting")
        if _CHITCHAT.match(text):
            return RouteDecision("decline", "out of scope chit-chat")
        if not [t for t in raw_tokens(text) if t.lower() not in STOPWORDS]:
            return RouteDecision("decline", "no content words")
        return RouteDecision("retrieve", "question about the documents")

    async def aroute(self, question: str, history: Sequence[Turn]) -> RouteDecision:
        return self.route(question, history)


def _clean_target(raw: str) -> str | None:
    target = _TARGET_NOISE.sub("", raw.strip()).strip(" \"'`")
    if target.lower() in {"", "it", "that", "this", "above", "the above", "your answer"}:
        return None
    return target
