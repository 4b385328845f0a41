"""`graphs`: the short spelling of `ragloom.graphs` (`from graphs import build_assistant`).

The only top-level module ragloom installs besides `ragloom`; it holds nothing of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragloom.graphs.assistant import build_assistant
    from ragloom.graphs.summarizer import build_summarizer

__all__ = ["build_assistant", "build_summarizer"]


def __getattr__(name: str) -> Any:
    """Delegate to `ragloom.graphs` (which loads each builder on first use)."""
    import ragloom.graphs

    if name in __all__:
        return getattr(ragloom.graphs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
