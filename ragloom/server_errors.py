"""The server's typed errors and the one JSON error shape every route answers with.

    {"error": {"message": "...", "type": "invalid_request_error", "code": "thread_busy"}}

That is OpenAI's error shape (the `openai` client raises its typed exceptions from it); `code` is
ragloom's stable error code. Errors of the ragloom tree map to an HTTP status here; anything else
is a 500 `internal` whose message says nothing about its cause (the log has it, redacted).

    RagloomError
    └── ServerError                   code               status
        ├── UnauthorizedError         unauthorized       401 (no or unknown bearer key)
        ├── NotFoundError             not_found          404 (unknown route, thread, source)
        ├── UnknownModelError         model_not_found    404
        ├── ThreadBusyError           thread_busy        409 (a run is in progress on it)
        ├── PayloadTooLargeError      payload_too_large  413
        ├── InvalidRequestError       invalid_request    422
        └── NotReadyError             not_ready          503 (store or checkpointer unreachable)
"""

from __future__ import annotations

from typing import Any, ClassVar

from ragloom.core import errors as core
from ragloom.core.logging import redact_text


class ServerError(core.RagloomError):
    """An error the server answers with a given HTTP status."""

    code: ClassVar[str] = "server"
    status: ClassVar[int] = 500


class UnauthorizedError(ServerError):
    code = "unauthorized"
    status = 401


class NotFoundError(ServerError):
    code = "not_found"
    status = 404


class UnknownModelError(NotFoundError):
    code = "model_not_found"


class ThreadBusyError(ServerError):
    code = "thread_busy"
    status = 409
    retryable = True


class PayloadTooLargeError(ServerError):
    code = "payload_too_large"
    status = 413


class InvalidRequestError(ServerError):
    code = "invalid_request"
    status = 422


class NotReadyError(ServerError):
    code = "not_ready"
    status = 503
    retryable = True


# ragloom errors that are not ServerErrors: (status, public message or None to keep the message)
_STATUS: list[tuple[type[core.RagloomError], int, str | None]] = [
    (core.AuthenticationError, 502, "the model provider refused the server's credentials"),
    (core.ConfigError, 500, None),
    (core.RateLimitError, 429, "the model provider is rate limiting this server; retry later"),
    (core.ProviderTimeoutError, 504, "the model provider did not answer in time"),
    (core.DeadlineExceededError, 504, "the model provider did not answer in time"),
    (core.ProviderUnavailableError, 503, "the model provider is unavailable; retry later"),
    (core.ProviderError, 502, "the model provider returned an error"),
    (core.StoreUnavailableError, 503, "the document store is unavailable; retry later"),
    (core.StoreError, 500, "the document store failed"),
    (core.IngestError, 422, None),
    (core.InvalidQueryError, 422, None),
    (core.BudgetExceededError, 500, None),
]

INTERNAL_MESSAGE = "internal server error"


def status_of(exc: BaseException) -> int:
    """The HTTP status an exception answers with."""
    if isinstance(exc, ServerError):
        return exc.status
    for cls, status, _ in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_type(status: int) -> str:
    """OpenAI's error `type` for a status."""
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_body(exc: BaseException) -> dict[str, Any]:
    """The JSON error body for `exc`: typed, redacted, never a stack trace."""
    status = status_of(exc)
    if isinstance(exc, ServerError):
        code, message = exc.code, exc.message
    elif isinstance(exc, core.RagloomError):
        code = exc.code
        public = next((text for cls, _, text in _STATUS if isinstance(exc, cls)), None)
        message = public or exc.message
    else:
        code, message = "internal", INTERNAL_MESSAGE
    return problem(status, code, message)


def problem(status: int, code: str, message: str) -> dict[str, Any]:
    """An error body from its parts (the message is redacted)."""
    return {"error": {"message": redact_text(message), "type": error_type(status), "code": code}}


def retry_after(exc: BaseException) -> float | None:
    """Seconds a client should wait before retrying, when the error says so."""
    value = getattr(exc, "retry_after", None)
    return float(value) if isinstance(value, int | float) else None
