"""LangGraph state machines: `build_assistant()` and `build_summarizer()`.

Importing this package is cheap: the builders (and LangGraph with them) load on first use.
`from ragloom.graphs import build_assistant` is the robust spelling; the top-level `graphs`
module is a short alias of this one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragloom.graphs.assistant import build_assistant
    from ragloom.graphs.summarizer import build_summarizer

__all__ = ["build_assistant", "build_summarizer"]

_HOMES = {
    "build_assistant": "ragloom.graphs.assistant",
    "build_summarizer": "ragloom.graphs.summarizer",
}


def __getattr__(name: str) -> Any:
    """Load a builder on first access (PEP 562), so its real signature is what users see."""
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
