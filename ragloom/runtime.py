"""Building the product from settings at the edge (CLI, server): logging, store, assistant."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ragloom.core.settings import Settings, load_settings


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
def open_store(settings: Settings | None = None) -> Iterator[Any]:
    """The configured store (with its embedder), closed on exit."""
    from ragloom.core.embedders import build_embedder
    from ragloom.tools.stores import build_store

    settings = settings or setup()
    store = build_store(settings, build_embedder(settings))
    try:
        yield store
    finally:
        store.close()


@contextmanager
def open_assistant(settings: Settings | None = None) -> Iterator[Any]:
    """A ready assistant graph over the configured store and checkpointer."""
    from ragloom.graphs.assistant import build_assistant

    settings = settings or setup()
    with open_store(settings) as store:
        yield build_assistant(settings, store=store)
