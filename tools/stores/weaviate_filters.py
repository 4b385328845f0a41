"""Translate ragloom `Filters` into a weaviate-client v4 filter, as a pure function.

The Weaviate schema (see `weaviate_store.py`) indexes `source` and `tags` with `field`
tokenization (whole-string equality) and `modified` as a `date` holding the chunk's
modification day at 00:00 UTC, so the translation keeps `Filters.matches` semantics:

    sources         -> source == s1 OR source == s2 ...
    path_prefix     -> source LIKE "<prefix>*"
    tags            -> tags CONTAINS ALL [...]
    modified_after  -> modified >= after 00:00 UTC
    modified_before -> modified <  (before + 1 day) 00:00 UTC   (the whole day counts)

All given terms are combined with AND; empty filters give None (no `where` at all).
Weaviate's LIKE has no escape character, so a prefix containing `*` or `?` matches more
than `startswith` would; the store re-checks `Filters.matches` on what comes back.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from ragloom.tools.stores.base import Filters

if TYPE_CHECKING:
    from weaviate.collections.classes.filters import _Filters


def day_start(day: date) -> datetime:
    """Midnight UTC of `day`: how the store writes and compares `modified`."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def to_weaviate_filter(filters: Filters | None) -> _Filters | None:
    """The weaviate `Filter` equivalent to `filters` (None when there is nothing to filter)."""
    from weaviate.classes.query import Filter

    if filters is None or filters.empty:
        return None
    parts: list[_Filters] = []
    if filters.sources:
        equal = [Filter.by_property("source").equal(s) for s in filters.sources]
        parts.append(equal[0] if len(equal) == 1 else Filter.any_of(equal))
    if filters.path_prefix:
        parts.append(Filter.by_property("source").like(f"{filters.path_prefix}*"))
    if filters.tags:
        parts.append(Filter.by_property("tags").contains_all(list(filters.tags)))
    if filters.modified_after:
        parts.append(
            Filter.by_property("modified").greater_or_equal(day_start(filters.modified_after))
        )
    if filters.modified_before:
        end = day_start(filters.modified_before + timedelta(days=1))
        parts.append(Filter.by_property("modified").less_than(end))
    return parts[0] if len(parts) == 1 else Filter.all_of(parts)
