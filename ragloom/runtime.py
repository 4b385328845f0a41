"""The surfaces' start-up (CLI, server): read settings once, configure logging, and open the
product through the wiring module (`ragloom.graphs.wiring`), closed on exit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ragloom.core.settings import Settings, load_settings
from ragloom.graphs.wiring import Wiring

if TYPE_CHECKING:
    from langgraph.graph.state import CompiledStateGraph

    from ragloom.tools.stores.base import ChunkStore


def setup(settings: Settings | None = None) -> Settings:
    """Read settings once and configure logging from them."""
    from ragloom.core.logging import configure_logging

    settings = settings or load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    if settings.llm.api_key is not None:
        from ragloom.core.logging import register_secret

        register_secret(settings.llm.api_key.get_secret_value())
    return settings


@contextmanager
def open_wiring(settings: Settings | None = None) -> Iterator[Wiring]:
    """A wiring over the configured settings, closed on exit."""
    with Wiring(settings or setup()) as wiring:
        yield wiring


@contextmanager
def open_store(settings: Settings | None = None) -> Iterator[ChunkStore]:
    """The configured store (with its embedder), closed on exit."""
    with open_wiring(settings) as wiring:
        yield wiring.store


@contextmanager
def open_assistant(
    settings: Settings | None = None, *, persist: bool = True
) -> Iterator[CompiledStateGraph[Any, Any, Any, Any]]:
    """A ready assistant graph over the configured store and checkpointer, closed on exit."""
    with open_wiring(settings) as wiring:
        yield wiring.assistant(persist=persist)
