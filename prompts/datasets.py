"""Train/dev sets for compiling and evaluating prompt modules.

Two sources:
- a JSONL file, one example per line, its keys mapped onto the module signature's fields
  (`mapping={"answer": "reference"}` reads the `answer` field from the line's `reference` key);
- a question directory shaped like `shared/datasets/python-docs` (`questions.jsonl` with `id`,
  `question`, `answer`, `gold`): retrieval runs once per question to build the `context` input,
  cached on disk by a hash of the questions, the retriever key and k.

Retrieval is injected (`retrieve(question) -> list[Chunk]`), so this module never imports
`tools`; the CLI wires the store. Splits are deterministic: a hash of each example's id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from ragloom.core.documents import Chunk
from ragloom.core.errors import ConfigError

log = structlog.get_logger(__name__)

Retrieve = Callable[[str], Sequence[Chunk]]
OPTIONAL_INPUTS = {"feedback", "history", "attempt_note", "heading"}
QUESTIONS_FILE = "questions.jsonl"


def signature_fields(module: str) -> tuple[list[str], list[str]]:
    """(input field names, output field names) of a module's signature."""
    from ragloom.prompts.programs import build_program

    program = build_program(module)
    (_, predictor), *_ = program.named_predictors()
    signature = predictor.signature
    return list(signature.input_fields), list(signature.output_fields)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; blank lines skipped; a bad line is a ConfigError naming it."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number} is not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise ConfigError(f"{path}:{number} is not a JSON object")
        rows.append(row)
    return rows


def example_id(row: Mapping[str, Any]) -> str:
    """The row's `id`, or a hash of its content when it has none."""
    if row.get("id") is not None:
        return str(row["id"])
    blob = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def to_example(
    row: Mapping[str, Any],
    inputs: Sequence[str],
    outputs: Sequence[str],
    mapping: Mapping[str, str] | None = None,
    *,
    where: str = "",
) -> Any:
    """A `dspy.Example` with the signature's inputs marked; extra keys ride along."""
    import dspy

    mapping = mapping or {}
    data: dict[str, Any] = {k: v for k, v in row.items() if k not in mapping.values()}
    for field_name in (*inputs, *outputs):
        source = mapping.get(field_name, field_name)
        if source in row:
            data[field_name] = row[source]
        elif field_name in OPTIONAL_INPUTS:
            data[field_name] = ""
        elif field_name in inputs:
            raise ConfigError(
                f"{where or 'example'} lacks input field {field_name!r}",
                fix=f"add it, or map it with --map {field_name}=<key>",
            )
    data["id"] = example_id(row)
    return dspy.Example(**data).with_inputs(*inputs)


def load_jsonl(
    path: Path | str, module: str, mapping: Mapping[str, str] | None = None
) -> list[Any]:
    """Examples for `module` from a JSONL file."""
    path = Path(path)
    inputs, outputs = signature_fields(module)
    rows = read_jsonl(path)
    return [
        to_example(row, inputs, outputs, mapping, where=f"{path}:{number}")
        for number, row in enumerate(rows, start=1)
    ]


def _cache_key(questions: Path, retriever_key: str, k: int) -> str:
    digest = hashlib.sha256(questions.read_bytes())
    digest.update(f"\x00{retriever_key}\x00{k}".encode())
    return digest.hexdigest()[:16]


def retrieve_all(
    rows: Sequence[Mapping[str, Any]],
    retrieve: Retrieve,
    *,
    k: int,
    cache_file: Path | None = None,
) -> dict[str, list[Chunk]]:
    """Chunks per question id, from `cache_file` when present, else by calling `retrieve`."""
    if cache_file is not None and cache_file.exists():
        cached = json.loads(cache_file.read_text(encoding="utf-8"))
        log.info("retrieval cache hit", cache=str(cache_file), questions=len(cached))
        return {qid: [Chunk.from_dict(c) for c in chunks] for qid, chunks in cached.items()}
    results = {example_id(r): list(retrieve(str(r["question"])))[:k] for r in rows}
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        payload = {qid: [c.to_dict() for c in chunks] for qid, chunks in results.items()}
        cache_file.write_text(json.dumps(payload), encoding="utf-8")
    return results


def load_question_dir(
    directory: Path | str,
    retrieve: Retrieve,
    *,
    k: int = 4,
    cache_dir: Path | None = None,
    retriever_key: str = "",
    limit: int | None = None,
) -> list[Any]:
    """Answerer examples from a python-docs-shaped directory: `question`, `context` (the top-k
    retrieved chunks, labelled c1..ck), `answer` (reference), `gold` (gold source path) and
    `label_sources` (label -> chunk source, for the citation metric)."""
    import dspy

    from ragloom.prompts.programs import chunk_labels, format_context

    directory = Path(directory)
    questions = directory / QUESTIONS_FILE
    if not questions.is_file():
        raise ConfigError(f"{directory} has no {QUESTIONS_FILE}")
    rows = read_jsonl(questions)[:limit]
    cache_file = None
    if cache_dir is not None:
        key = _cache_key(questions, retriever_key, k)
        cache_file = Path(cache_dir) / f"retrieval-{key}-{len(rows)}.json"
    retrieved = retrieve_all(rows, retrieve, k=k, cache_file=cache_file)
    examples = []
    for row in rows:
        chunks = retrieved[example_id(row)]
        labels = chunk_labels(chunks)
        sources = {label: c.source for label, c in zip(labels, chunks, strict=True)}
        example = dspy.Example(
            id=example_id(row),
            question=row["question"],
            context=format_context(chunks),
            feedback="",
            answer=row.get("answer", ""),
            gold=row.get("gold", ""),
            label_sources=sources,
        )
        examples.append(example.with_inputs("question", "context", "feedback"))
    return examples


def load_dataset(
    path: Path | str,
    module: str,
    *,
    retrieve: Retrieve | None = None,
    mapping: Mapping[str, str] | None = None,
    **dir_options: Any,
) -> list[Any]:
    """Examples from a JSONL file or a question directory (answerer only; needs `retrieve`)."""
    path = Path(path)
    if path.is_dir():
        if module != "answerer":
            raise ConfigError(f"a question directory builds answerer examples, not {module!r}")
        if retrieve is None:
            raise ConfigError(f"{path} is a question directory: retrieval is needed to build it")
        return load_question_dir(path, retrieve, **dir_options)
    if not path.is_file():
        raise ConfigError(f"dataset {path} does not exist")
    return load_jsonl(path, module, mapping)


def split_bucket(key: str) -> float:
    """A stable number in [0, 1) from a key."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) / 0x1_0000_0000


def split(examples: Iterable[Any], dev_fraction: float = 0.3) -> tuple[list[Any], list[Any]]:
    """(train, dev) by a hash of each example's id: the same example always lands on the same
    side, whatever the order or size of the set."""
    train: list[Any] = []
    dev: list[Any] = []
    for example in examples:
        (dev if split_bucket(str(example.get("id", ""))) < dev_fraction else train).append(example)
    return train, dev


def dataset_hash(examples: Iterable[Any]) -> str:
    """Hash of the examples' contents (16 hex chars), recorded in artefact metadata."""
    digest = hashlib.sha256()
    for example in examples:
        blob = json.dumps(dict(example.items()), sort_keys=True, ensure_ascii=False, default=str)
        digest.update(blob.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:16]
