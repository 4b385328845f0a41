"""Datasets: JSONL with field mapping, question directories with injected retrieval, splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragloom.core.documents import Chunk
from ragloom.core.errors import ConfigError
from ragloom.prompts.datasets import (
    dataset_hash,
    load_dataset,
    load_jsonl,
    load_question_dir,
    split,
)


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_maps_keys_onto_signature_fields(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", [{"id": "1", "q": "Why?", "ctx": "[c1] x", "ref": "So."}])
    (example,) = load_jsonl(path, "answerer", {"question": "q", "context": "ctx", "answer": "ref"})
    assert example.inputs().toDict() == {"question": "Why?", "context": "[c1] x", "feedback": ""}
    assert example.labels().toDict() == {"id": "1", "answer": "So."}


def test_jsonl_missing_input_is_a_config_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", [{"question": "Why?"}])
    with pytest.raises(ConfigError, match="context"):
        load_jsonl(path, "answerer")
    (tmp_path / "bad.jsonl").write_text("{nope\n")
    with pytest.raises(ConfigError, match=r"bad\.jsonl:1"):
        load_jsonl(tmp_path / "bad.jsonl", "answerer")


def test_question_dir_retrieves_once_and_caches(tmp_path: Path) -> None:
    _write(
        tmp_path / "questions.jsonl",
        [
            {
                "id": "a",
                "question": "What is a list?",
                "answer": "A sequence.",
                "gold": "t/lists.rst",
            },
            {
                "id": "b",
                "question": "What is a dict?",
                "answer": "A mapping.",
                "gold": "t/dicts.rst",
            },
        ],
    )
    calls: list[str] = []

    def retrieve(question: str) -> list[Chunk]:
        calls.append(question)
        return [
            Chunk(id=f"{i:024d}", source=f"/corpus/t/{w}.rst", text=f"{question} {w}")
            for i, w in enumerate(["lists", "dicts"])
        ]

    first = load_question_dir(tmp_path, retrieve, k=2, cache_dir=tmp_path / "cache")
    again = load_question_dir(tmp_path, retrieve, k=2, cache_dir=tmp_path / "cache")
    assert len(calls) == 2
    assert [e.toDict() for e in first] == [e.toDict() for e in again]
    example = first[0]
    assert example.context.startswith("[c1] (/corpus/t/lists.rst)\nWhat is a list? lists")
    assert example.label_sources == {"c1": "/corpus/t/lists.rst", "c2": "/corpus/t/dicts.rst"}
    assert set(example.inputs().keys()) == {"question", "context", "feedback"}
    load_question_dir(tmp_path, retrieve, k=1, cache_dir=tmp_path / "cache")
    assert len(calls) == 4  # another k is another cache entry


def test_question_dir_needs_retrieval(tmp_path: Path, dataset_dir: Path) -> None:
    with pytest.raises(ConfigError, match="retrieval"):
        load_dataset(dataset_dir, "answerer")
    examples = load_dataset(dataset_dir, "answerer", retrieve=lambda q: [], limit=3)
    assert len(examples) == 3
    assert all(e.gold and e.context == "" and e.answer for e in examples)


def test_split_is_deterministic_by_id(tmp_path: Path) -> None:
    rows = [{"id": str(i), "question": f"q{i}", "context": "c", "answer": "a"} for i in range(60)]
    examples = load_jsonl(_write(tmp_path / "t.jsonl", rows), "answerer")
    train, dev = split(examples, 0.3)
    train2, dev2 = split(list(reversed(examples)), 0.3)
    assert {e.id for e in dev} == {e.id for e in dev2}
    assert {e.id for e in train} == {e.id for e in train2}
    assert 8 <= len(dev) <= 28
    assert dataset_hash(dev) != dataset_hash(train)
