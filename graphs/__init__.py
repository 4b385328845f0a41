"""LangGraph state machines: `build_assistant()` and `build_summarizer()`.

Importing this package is cheap: the builders import their dependencies when called.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_assistant", "build_summarizer"]


def build_assistant(*args: Any, **kwargs: Any) -> Any:
    """See `graphs.assistant.build_assistant`."""
    from graphs.assistant import build_assistant as build

    return build(*args, **kwargs)


def build_summarizer(*args: Any, **kwargs: Any) -> Any:
    """See `graphs.summarizer.build_summarizer`."""
    from graphs.summarizer import build_summarizer as build

    return build(*args, **kwargs)
