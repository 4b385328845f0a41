"""Settings for tests: everything local, in a temporary directory, with short timeouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragloom.core.settings import Settings

TEST_API_KEY = "sk-test-ragloom-not-a-real-key"


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def make_test_settings(
    tmp_path: Path | str, *, base_url: str | None = None, **overrides: Any
) -> Settings:
    """Settings for one test: hashing embedder, embedded store and SQLite threads in `tmp_path`.

    With `base_url` (e.g. `OpenAICompatibleServer().base_url`) the engine is `openai`, talking to
    that server with a dummy key, a 2 s timeout, 2 retries and a 5 s deadline; without it the
    engine is `extractive`. Nested overrides merge: `llm={"model": "m"}` keeps the rest.
    """
    root = Path(tmp_path)
    llm: dict[str, Any] = {"model": "test-model", "timeout": 2.0, "max_retries": 2,
                           "deadline": 5.0}
    if base_url is not None:
        llm.update(base_url=base_url, api_key=TEST_API_KEY)
    base: dict[str, Any] = {
        "engine": "openai" if base_url is not None else "extractive",
        "llm": llm,
        "embedder": {"kind": "hashing", "dimensions": 256},
        "store": {"kind": "embedded", "path": root / "store.db"},
        "checkpointer": {"kind": "sqlite", "path": root / "threads.db"},
        "prompts": {"compiled_dir": root / "compiled"},
        "log_format": "json",
    }
    return Settings(**_merge(base, overrides))
