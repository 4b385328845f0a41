"""The pure Filters -> weaviate Filter translation (no server)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from weaviate.collections.classes.filters import _FilterAnd, _FilterOr, _FilterValue

from ragloom.tools.stores.base import Filters
from ragloom.tools.stores.weaviate_filters import day_start, to_weaviate_filter


def _leaves(node: object) -> list[tuple[str, str, object]]:
    """(property, operator, value) of every leaf, depth first."""
    if isinstance(node, _FilterValue):
        return [(str(node.target), node.operator.name, node.value)]
    assert isinstance(node, _FilterAnd | _FilterOr)
    return [leaf for child in node.filters for leaf in _leaves(child)]


def test_empty_or_missing_filters_translate_to_none() -> None:
    assert to_weaviate_filter(None) is None
    assert to_weaviate_filter(Filters()) is None


def test_one_source_is_a_single_equality() -> None:
    node = to_weaviate_filter(Filters(sources=("a.md",)))
    assert isinstance(node, _FilterValue)
    assert _leaves(node) == [("source", "EQUAL", "a.md")]


def test_several_sources_are_or_ed() -> None:
    node = to_weaviate_filter(Filters(sources=("a.md", "b.md")))
    assert isinstance(node, _FilterOr)
    assert _leaves(node) == [("source", "EQUAL", "a.md"), ("source", "EQUAL", "b.md")]


def test_path_prefix_becomes_a_trailing_wildcard_like() -> None:
    node = to_weaviate_filter(Filters(path_prefix="library/"))
    assert _leaves(node) == [("source", "LIKE", "library/*")]


def test_tags_must_all_be_present() -> None:
    node = to_weaviate_filter(Filters(tags=("stdlib", "howto")))
    assert _leaves(node) == [("tags", "CONTAINS_ALL", ["stdlib", "howto"])]


def test_date_range_covers_whole_days_in_utc() -> None:
    node = to_weaviate_filter(
        Filters(modified_after=date(2024, 1, 1), modified_before=date(2024, 1, 31))
    )
    assert isinstance(node, _FilterAnd)
    assert _leaves(node) == [
        ("modified", "GREATER_THAN_EQUAL", datetime(2024, 1, 1, tzinfo=UTC)),
        ("modified", "LESS_THAN", datetime(2024, 2, 1, tzinfo=UTC)),
    ]


def test_all_terms_are_and_ed_in_a_fixed_order() -> None:
    filters = Filters.parse("source:x.md path:lib/ tag:t after:2024-05-01")
    node = to_weaviate_filter(filters)
    assert isinstance(node, _FilterAnd)
    assert [leaf[:2] for leaf in _leaves(node)] == [
        ("source", "EQUAL"), ("source", "LIKE"), ("tags", "CONTAINS_ALL"),
        ("modified", "GREATER_THAN_EQUAL"),
    ]


def test_the_translation_serialises_to_grpc() -> None:
    """What the client would send: operators and values land in the protobuf message."""
    from weaviate.collections.filters import _FilterToGRPC

    node = to_weaviate_filter(Filters.parse("tag:a tag:b before:2024-02-29"))
    message = _FilterToGRPC.convert(node)
    assert message.operator == message.OPERATOR_AND
    tags, modified = message.filters
    assert tags.target.property == "tags"
    assert list(tags.value_text_array.values) == ["a", "b"]
    assert modified.operator == modified.OPERATOR_LESS_THAN
    assert modified.value_text.startswith("2024-03-01T00:00:00")


def test_day_start_is_midnight_utc() -> None:
    assert day_start(date(2023, 12, 31)) == datetime(2023, 12, 31, 0, 0, tzinfo=UTC)
