"""Helpers for tests that script an LLM behind DSPy's ChatAdapter (shipped, like core.testing).

`chat_reply(answer="...")` formats a reply the way ChatAdapter parses it; `has_demos(request)`
tells whether a chat request carries few-shot demonstrations (a compiled prompt).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any


def format_value(value: Any) -> str:
    """A field value as ChatAdapter expects it: lists/dicts as JSON, everything else as str."""
    if isinstance(value, list | tuple | dict):
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    return str(value)


def chat_reply(**fields: Any) -> str:
    """`[[ ## name ## ]]` sections for each field, then the `completed` marker."""
    parts = [f"[[ ## {name} ## ]]\n{format_value(value)}" for name, value in fields.items()]
    return "\n\n".join([*parts, "[[ ## completed ## ]]"])


def request_messages(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The chat messages of an OpenAI-style request body."""
    return list(request.get("messages") or [])


def has_demos(request: Mapping[str, Any]) -> bool:
    """True when the prompt holds demonstrations: ChatAdapter sends them as user/assistant
    pairs between the system message and the final user message."""
    return any(m.get("role") == "assistant" for m in request_messages(request))


def last_user_content(request: Mapping[str, Any]) -> str:
    """Text of the final user message (string or content parts)."""
    for message in reversed(request_messages(request)):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def input_field(request: Mapping[str, Any], name: str) -> str:
    """The value of input field `name` in the final user message ('' when absent)."""
    text = last_user_content(request)
    marker = f"[[ ## {name} ## ]]"
    if marker not in text:
        return ""
    rest = text.split(marker, 1)[1]
    rest = rest.split("Respond with the corresponding output fields", 1)[0]
    return rest.split("[[ ## ", 1)[0].strip()


_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]")


def requested_fields(request: Mapping[str, Any]) -> list[str]:
    """Output field names the prompt asks for, in order (from ChatAdapter's closing line)."""
    text = last_user_content(request)
    tail = text.rsplit("Respond with the corresponding output fields", 1)
    if len(tail) < 2:
        return []
    return [name for name in _FIELD.findall(tail[1]) if name != "completed"]


def reply_for(request: Mapping[str, Any], defaults: Mapping[str, Any]) -> str:
    """A ChatAdapter reply with every requested field, valued from `defaults` ('' otherwise).
    Lets one responder serve several roles: `reply_for(req, {"answer": ..., "relevant": True})`."""
    return chat_reply(**{name: defaults.get(name, "") for name in requested_fields(request)})
