"""structlog configuration: JSON lines when not a TTY, console otherwise; secrets redacted.

    configure_logging(level="INFO")            # once, at the edge (CLI, server, app)
    with bind_run(run_id="r1", thread_id="t1"):
        log.info("answer", node="generate")  # -> {"event": "answer", "run_id": "r1", ...}

Bound keys come from contextvars, so they follow a run through threads started with
`contextvars.copy_context()` and through asyncio tasks. The redaction processor runs last before
rendering: it blanks values under secret-looking keys (api_key, authorization, password, token,
secret...), `Bearer ...` and `sk-...` strings, and every value passed to `register_secret` (the
gateway registers the configured API key), wherever it appears, even inside free text. A secret
shorter than `MIN_SECRET_LENGTH` cannot be blanked safely (it would match inside ordinary words):
`register_secret` refuses it with a `ConfigError` rather than let it be logged.
Standard-library loggers (httpx, openai, langchain) are routed through the same pipeline; HTTP
client loggers (`httpx`/`httpcore` and the `httpx2`/`httpcore2` of newer openai SDKs) only show
warnings; records emitted while the interpreter shuts down (clients closing in `__del__`) are
dropped instead of printing `--- Logging error ---` tracebacks.
"""

from __future__ import annotations

import atexit
import logging
import re
import sys
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal, TextIO

import structlog
from pydantic import SecretBytes, SecretStr

from ragloom.core.errors import ConfigError

REDACTED = "[REDACTED]"
Format = Literal["auto", "json", "console"]

_SECRET_KEY = re.compile(
    r"(^|[_\-.])(api[_\-]?key|apikey|authorization|password|passwd|passphrase|secret|"
    r"client[_\-]secret|access[_\-]token|refresh[_\-]token|id[_\-]token|token|cookie|"
    r"set[_\-]cookie|credentials?)$",
    re.IGNORECASE,
)
# Replacements are functions, not templates: a template compiles (imports) on first use, which
# fails while the interpreter shuts down.
_SECRET_TEXT = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{4,}"),
     lambda m: f"{m.group(1)} {REDACTED}"),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"), lambda m: REDACTED),
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), lambda m: f"{m.group(1)}{REDACTED}@"),
]
MIN_SECRET_LENGTH = 6
QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "urllib3", "LiteLLM")
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_HANDLER_NAME = "ragloom-structlog"


def register_secret(value: str | SecretStr | None, setting: str | None = None) -> None:
    """Redact `value` wherever it appears in log output from now on. A value shorter than
    `MIN_SECRET_LENGTH` raises `ConfigError` (naming `setting`): it cannot be redacted safely."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not value:
        return
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"a configured secret is {len(value)} characters long, too short to keep out of "
            f"logs (at least {MIN_SECRET_LENGTH} are needed)",
            setting=setting,
            fix="use the real key; a local server that needs no key works with llm.api_key unset",
        )
    with _secrets_lock:
        _secrets.add(value)


def redact_text(text: str) -> str:
    """`text` with registered secrets, bearer tokens, `sk-` keys and URL passwords blanked."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def is_secret_key(key: object) -> bool:
    """True for keys that name a credential (api_key, Authorization, password, token...)."""
    return isinstance(key, str) and bool(_SECRET_KEY.search(key))


def redact_value(value: Any) -> Any:
    """`value` with secrets removed, recursing into dicts, lists, tuples and sets."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, SecretStr | SecretBytes):
        return REDACTED
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {k: REDACTED if is_secret_key(k) and v else redact_value(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(redact_value(v) for v in value) if not isinstance(value, tuple) \
            else tuple(redact_value(v) for v in value)
    if isinstance(value, bytes):
        return value
    text = str(value)
    cleaned = redact_text(text)
    return value if cleaned == text else cleaned


def redact_secrets(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: remove secrets anywhere in the event dict."""
    for key in list(event_dict):
        value = event_dict[key]
        if is_secret_key(key) and value:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = redact_value(value)
    return event_dict


class _LazyStderr:
    """Writes to whatever `sys.stderr` is at write time (so test capture sees it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def _renderer(fmt: Format, stream: Any) -> Any:
    use_console = fmt == "console" or (fmt == "auto" and _isatty(stream))
    if use_console:
        return structlog.dev.ConsoleRenderer(colors=_isatty(stream))
    return structlog.processors.JSONRenderer(default=str)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]


def configure_logging(
    level: str | int = "INFO", fmt: Format = "auto", stream: TextIO | None = None
) -> None:
    """Configure structlog (and route stdlib logging through it). Safe to call again."""
    numeric = level if isinstance(level, int) else logging.getLevelName(str(level).upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    out: Any = stream if stream is not None else _LazyStderr()
    renderer = _renderer(fmt, out)
    structlog.configure(
        processors=[*_shared_processors(), redact_secrets, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(numeric, out, renderer)


_exiting = threading.Event()
atexit.register(_exiting.set)


class _StdlibHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stdlib handler: silent once the interpreter is exiting. HTTP clients closed by
    `__del__` at shutdown still log, when imports and streams may already be gone."""

    def emit(self, record: logging.LogRecord) -> None:
        if _exiting.is_set() or sys.is_finalizing():
            return
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        if _exiting.is_set() or sys.is_finalizing():
            return
        super().handleError(record)


def _route_stdlib(level: int, out: Any, renderer: Any) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = _StdlibHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    redact_secrets, renderer],
    ))
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


@contextmanager
def bind_run(
    run_id: str | None = None,
    thread_id: str | None = None,
    node: str | None = None,
    **extra: Any,
) -> Iterator[None]:
    """Bind run_id / thread_id / node (and any extra keys) to every log line inside the block."""
    values = {"run_id": run_id, "thread_id": thread_id, "node": node, **extra}
    with structlog.contextvars.bound_contextvars(
        **{k: v for k, v in values.items() if v is not None}
    ):
        yield
