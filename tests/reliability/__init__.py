"""The reliability suite (issue 13): fast parts in `make test`, full size in `make reliability`."""

from __future__ import annotations

import os
from pathlib import Path


def ragloom_env(root: Path, **settings: str) -> dict[str, str]:
    """Environment of a ragloom subprocess: offline, hashing embedder, store and threads under
    `root`, quiet JSON logs, then `settings` (RAGLOOM_* names); nothing inherited from the
    caller's RAGLOOM_* or OPENAI_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGLOOM_", "OPENAI_"))}
    env.update(
        RAGLOOM_EMBEDDER__KIND="hashing",
        RAGLOOM_EMBEDDER__DIMENSIONS="256",
        RAGLOOM_STORE__PATH=str(root / "store.db"),
        RAGLOOM_CHECKPOINTER__PATH=str(root / "threads.db"),
        RAGLOOM_LOG_LEVEL="WARNING",
        RAGLOOM_LOG_FORMAT="json",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    env.update(settings)
    return env
