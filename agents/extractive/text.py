"""Compatibility alias: the text utilities live in `ragloom.core.text` (one text module for
ingestion, stores, the extractive engine and metrics). Import from there."""

from ragloom.core.text import *  # noqa: F403
from ragloom.core.text import __all__  # noqa: F401
