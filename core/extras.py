"""The optional extras: the error a feature raises when the library it needs is not installed.

`pip install ragloom` brings what `build_assistant()` and the CLI need; the rest comes with
extras (pyproject.toml): `server` (fastapi, uvicorn), `compile` (optuna), `eval` (rouge-score),
`local` (sentence-transformers, torch), `postgres`, `ann` (hnswlib), and `all`.

    try:
        import uvicorn
    except ImportError as exc:
        raise missing_extra("server", "uvicorn", "ragloom serve") from exc
"""

from __future__ import annotations

from ragloom.core.errors import ConfigError


def missing_extra(extra: str, package: str, feature: str) -> ConfigError:
    """The ConfigError for `feature`, whose library `package` comes with `ragloom[extra]`."""
    return ConfigError(
        f"{feature} needs the optional package {package}, which is not installed",
        fix=f"pip install 'ragloom[{extra}]'",
    )
