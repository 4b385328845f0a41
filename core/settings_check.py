"""Checks `load_settings` runs at the edge, so a typo or a bad value is one clear line.

- `unknown_keys`: `RAGLOOM_*` variables (environment and `.env`) and `ragloom.toml` keys that
  name no setting, each with the closest valid name (`warn_unknown_keys` logs one line each).
- `config_error`: a pydantic `ValidationError` as one `ConfigError` naming the setting, the
  source to fix, and pydantic's reason (never the value of a secret).
- `check_secrets`: a configured secret shorter than the redactor can safely blank is refused
  (a short string would be replaced inside ordinary words, so it would be logged instead).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from ragloom.core.errors import ConfigError
from ragloom.core.logging import MIN_SECRET_LENGTH, is_secret_key, redact_text

log = logging.getLogger("ragloom.settings")

ENV_PREFIX = "RAGLOOM_"
# RAGLOOM_* variables that are not settings (read directly by the code or the test suite).
NOT_SETTINGS = frozenset({"CONFIG", "CACHE_DIR"})
NOT_SETTINGS_PREFIXES = ("TEST_",)
_SECRETISH = re.compile(r"key|secret|token|passw|url|dsn", re.IGNORECASE)


@dataclass(frozen=True)
class UnknownKey:
    """A configured name that matches no setting; `suggestion` is the closest valid one."""

    name: str  # as written: `RAGLOOM_LLM__MODLE` or `llm.modle`
    source: str  # `environment`, `.env` or the toml file's path
    suggestion: str | None

    def message(self) -> str:
        hint = f"; did you mean {self.suggestion}?" if self.suggestion else ""
        return f"unknown setting {self.name} (in {self.source}) is ignored{hint}"


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel class a field holds (also through `X | None`), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [m for a in typing.get_args(annotation) if (m := _nested_model(a)) is not None]
        return models[0] if len(models) == 1 else None
    return None


def setting_paths(
    model: type[BaseModel], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Every settable path of `model`, sections included: ("llm",), ("llm", "model"), ..."""
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        yield path
        nested = _nested_model(field.annotation)
        if nested is not None:
            yield from setting_paths(nested, path)


def _open_paths(model: type[BaseModel]) -> set[tuple[str, ...]]:
    """Leaf paths whose value is free-form (dicts, lists, ...): anything below them is theirs."""
    paths = set(setting_paths(model))
    return {p for p in paths if not any(q[: len(p)] == p and q != p for q in paths)}


def _is_known(path: tuple[str, ...], known: set[tuple[str, ...]], open_: set[tuple[str, ...]]
              ) -> bool:
    if path in known:
        return True
    return any(path[: len(leaf)] == leaf for leaf in open_ if len(leaf) < len(path))


def _env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + "__".join(path).upper()


def _closest(name: str, candidates: Iterable[str]) -> str | None:
    options = list(candidates)
    found = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if not found:  # a wrong section with a right key (`RAGLOOM_LMM__MODEL`): match on the tail
        tail = name.rsplit("__" if name.startswith(ENV_PREFIX) else ".", 1)[-1]
        found = [o for o in options if o.lower().endswith(tail.lower()) and tail]
        found = found[:1] if len(found) == 1 else []
    return found[0] if found else None


def _env_unknown(
    model: type[BaseModel], variables: Mapping[str, str | None], source: str
) -> list[UnknownKey]:
    known = set(setting_paths(model))
    open_ = _open_paths(model)
    names = [_env_name(p) for p in known]
    found = []
    for raw in variables:
        if not raw.upper().startswith(ENV_PREFIX):
            continue
        rest = raw[len(ENV_PREFIX):]
        if rest.upper() in NOT_SETTINGS or rest.upper().startswith(NOT_SETTINGS_PREFIXES):
            continue
        path = tuple(part.lower() for part in rest.split("__"))
        if not _is_known(path, known, open_):
            found.append(UnknownKey(raw, source, _closest(raw.upper(), names)))
    return found


def _toml_unknown(model: type[BaseModel], data: Mapping[str, Any], source: str) -> list[UnknownKey]:
    known = set(setting_paths(model))
    open_ = _open_paths(model)
    dotted = [".".join(p) for p in known]
    found: list[UnknownKey] = []

    def walk(node: Mapping[str, Any], prefix: tuple[str, ...]) -> None:
        for key, value in node.items():
            path = (*prefix, str(key))
            if not _is_known(path, known, open_):
                name = ".".join(path)
                found.append(UnknownKey(name, source, _closest(name, dotted)))
            elif isinstance(value, Mapping) and path not in open_:
                walk(value, path)

    walk(data, ())
    return found


def toml_path() -> Path:
    """The toml file settings read: `$RAGLOOM_CONFIG`, else `ragloom.toml` here."""
    return Path(os.environ.get("RAGLOOM_CONFIG", "ragloom.toml"))


def _read_toml(path: Path) -> Mapping[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", setting="RAGLOOM_CONFIG",
                          fix="fix the file's TOML syntax, or point RAGLOOM_CONFIG elsewhere"
                          ) from None


def _read_dotenv(path: Path) -> Mapping[str, str | None]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return dotenv_values(path)


def unknown_keys(
    model: type[BaseModel],
    *,
    environ: Mapping[str, str] | None = None,
    dotenv: Path | None = Path(".env"),
    toml: Path | None = None,
) -> list[UnknownKey]:
    """Names in the environment, `.env` and the toml file that match no setting of `model`."""
    env = os.environ if environ is None else environ
    found = _env_unknown(model, env, "environment")
    if dotenv is not None:
        found += _env_unknown(model, _read_dotenv(dotenv), str(dotenv))
    toml = toml if toml is not None else toml_path()
    found += _toml_unknown(model, _read_toml(toml), str(toml))
    return found


def warn_unknown_keys(model: type[BaseModel], **sources: Any) -> list[UnknownKey]:
    """Log one warning line per unknown name (see `unknown_keys`) and return them."""
    found = unknown_keys(model, **sources)
    for key in found:
        log.warning(key.message())
    return found


def _source_of(path: tuple[str, ...]) -> str:
    env = _env_name(path)
    if any(name.upper() == env for name in os.environ):
        return env
    return f"{'.'.join(path)} in {toml_path()} or .env ({env})"


def _maybe_secret(path: tuple[str, ...], value: Any) -> bool:
    """Whether a rejected value may be a credential (then it is not echoed back)."""
    return (
        isinstance(value, SecretStr | Mapping | list)
        or any(is_secret_key(p) or _SECRETISH.search(p) for p in path)
    )


def config_error(exc: ValidationError) -> ConfigError:
    """One `ConfigError` for a settings `ValidationError`: which setting, where, and why."""
    problems = []
    first: str | None = None
    for error in exc.errors()[:3]:
        path = tuple(str(p) for p in error.get("loc", ()))
        name = ".".join(path) or "settings"
        first = first or name
        value = error.get("input")
        shown = "" if _maybe_secret(path, value) else f" (got {redact_text(str(value))[:60]!r})"
        problems.append(f"{name}: {error.get('msg', 'invalid')}{shown}")
    more = len(exc.errors()) - len(problems)
    text = "; ".join(problems) + (f"; and {more} more" if more > 0 else "")
    path = tuple(first.split(".")) if first and first != "settings" else ()
    fix = f"change {_source_of(path)}" if path else "check the settings"
    return ConfigError(f"invalid setting {text}", setting=first, fix=fix)


_FIELD_IN = re.compile(r'field "([^"]+)" from source "(\w+)"')


def source_error(exc: Exception) -> ConfigError:
    """One `ConfigError` for a value pydantic-settings could not even parse (e.g. JSON in
    `RAGLOOM_SERVER__API_KEYS`), naming the setting and the variables to fix."""
    found = _FIELD_IN.search(str(exc))
    field = found.group(1) if found else "settings"
    prefix = _env_name((field,))
    names = sorted(n for n in os.environ if n.upper().startswith(prefix))
    where = ", ".join(names) or f"{field} in {toml_path()} or .env"
    cause = exc.__cause__ or exc.__context__
    reason = f": {cause}" if cause is not None else ""
    return ConfigError(f"invalid setting {field}: its value could not be parsed{reason}",
                       setting=field, fix=f"change {where} (lists and tables are JSON there)")


def check_secrets(settings: BaseModel, prefix: tuple[str, ...] = ()) -> None:
    """Refuse any configured secret too short to redact from logs safely."""
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        path = (*prefix, name)
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if isinstance(item, BaseModel):
                check_secrets(item, path)
            elif isinstance(item, SecretStr) and 0 < len(secret := item.get_secret_value()) \
                    < MIN_SECRET_LENGTH:
                dotted = ".".join(path)
                raise ConfigError(
                    f"{dotted} is {len(secret)} characters long, too short to "
                    f"keep out of logs (at least {MIN_SECRET_LENGTH} are needed)",
                    setting=dotted,
                    fix="use the real key; a local server that needs no key works with "
                    "llm.api_key unset",
                )
