"""Chunking: token-sized, heading-aware, overlapping, deterministic."""

from __future__ import annotations

import itertools

from ragloom.core.documents import Document, make_chunk_id
from ragloom.tools.ingest import count_tokens, split_document


def _doc(text: str, headings: tuple = (), source: str = "s.md") -> Document:
    return Document(source=source, text=text, title="T", headings=headings,
                    metadata={"modified": "2024-01-02T00:00:00+00:00", "tags": ["x"]})


LONG = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(300))


def test_same_document_gives_same_chunks_and_ids() -> None:
    first = split_document(_doc(LONG), chunk_tokens=64, overlap=8)
    second = split_document(_doc(LONG), chunk_tokens=64, overlap=8)
    assert [c.to_dict() for c in first] == [c.to_dict() for c in second]
    assert len({c.id for c in first}) == len(first)
    for chunk in first:
        assert chunk.id == make_chunk_id(chunk.source, chunk.position, chunk.text)
        assert chunk.metadata["tags"] == ["x"]


def test_chunks_respect_the_token_budget_and_overlap() -> None:
    chunks = split_document(_doc(LONG), chunk_tokens=64, overlap=16)
    assert len(chunks) > 10
    assert all(count_tokens(c.text) <= 64 + 16 for c in chunks)  # budget + tiny-piece slack
    assert sum(count_tokens(c.text) <= 64 for c in chunks) >= len(chunks) - 2
    overlapping = sum(1 for a, b in itertools.pairwise(chunks) if b.start < a.end)
    assert overlapping >= len(chunks) // 2
    no_overlap = split_document(_doc(LONG), chunk_tokens=64, overlap=0)
    assert all(b.start >= a.end for a, b in itertools.pairwise(no_overlap))


def test_chunks_never_cross_headings_and_carry_their_path() -> None:
    part_a = "A heading\n\n" + "alpha words here. " * 40
    part_b = "B heading\n\n" + "beta words here. " * 40
    text = part_a + part_b
    headings = ((0, ("A heading",)), (len(part_a), ("A heading", "B heading")))
    chunks = split_document(_doc(text, headings), chunk_tokens=50, overlap=5)
    for chunk in chunks:
        assert ("alpha" in chunk.text) != ("beta" in chunk.text)
        expected = ("A heading",) if "alpha" in chunk.text else ("A heading", "B heading")
        assert chunk.heading_path == expected


def test_tiny_sections_merge_into_the_next_one() -> None:
    text = "Title\n\nChapter\n\n" + "gamma words here. " * 30
    headings = ((0, ("Title",)), (7, ("Title", "Chapter")))
    chunks = split_document(_doc(text, headings), chunk_tokens=256, overlap=0)
    assert len(chunks) == 1
    assert chunks[0].text.startswith("Title")
    assert chunks[0].heading_path == ("Title", "Chapter")


def test_editing_the_end_keeps_earlier_chunk_ids() -> None:
    before = split_document(_doc(LONG), chunk_tokens=64, overlap=8)
    after = split_document(_doc(LONG + " One more sentence."), chunk_tokens=64, overlap=8)
    assert [c.id for c in before[:-1]] == [c.id for c in after[: len(before) - 1]]
    assert before[-1].id != after[-1].id


def test_merged_small_sections_keep_an_honest_heading_path() -> None:
    from ragloom.tools.ingest.loaders import parse_text

    body = " ".join(f"word{i}" for i in range(80))
    doc = parse_text(
        "Guide\n=====\n\nPart\n----\n\nSub\n~~~\n\n" + body + "\n\n"  # Part is only a heading
        "Other\n-----\n\nA short note.\n\nLast\n----\n\n" + body + "\n",  # Other has text
        "guide.rst",
    )
    paths = [c.heading_path for c in split_document(doc, chunk_tokens=128, overlap=0)]
    assert ("Guide", "Part", "Sub") in paths  # a bare parent heading joins its subsection
    assert ("Guide", "Last") not in paths  # "Other"'s note and "Last" share only "Guide"
    assert ("Guide",) in paths
