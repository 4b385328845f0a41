"""One error tree for ragloom. Client exceptions never cross a package boundary raw.

    RagloomError                      code            retryable
    ├── ConfigError                   config          no   (names the setting and the fix)
    │   └── AuthenticationError       auth            no   (401/403 from a provider)
    ├── ProviderError                 provider        no
    │   ├── BadRequestError           bad_request     no   (400/404/422)
    │   ├── RateLimitError            rate_limited    yes  (429; carries retry_after)
    │   ├── ProviderUnavailableError  unavailable     yes  (5xx, connection reset, gRPC UNAVAILABLE)
    │   ├── ProviderTimeoutError      timeout         yes
    │   ├── MalformedResponseError    malformed       no
    │   └── DeadlineExceededError     deadline        no   (retries ran out of total time)
    ├── StoreError                    store           no
    │   ├── StoreUnavailableError     store_unavailable yes
    │   └── StoreWriteError           store_write     no   (which chunks were not stored)
    ├── IngestError                   ingest          no   (one file; reported and skipped)
    │   ├── UnsupportedFileError      unsupported_file
    │   ├── EmptyFileError            empty_file
    │   ├── DecodeError               decode_error
    │   ├── FileTooLargeError         file_too_large
    │   └── ParseError                parse_error
    ├── InvalidQueryError             invalid_query   no   (empty once control characters go)
    ├── BudgetExceededError           budget_exceeded no   (which limit: steps|tokens|seconds|cost)
    └── ArtefactError                 artefact        no   (compiled prompt artefact unusable)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar


class RagloomError(Exception):
    """Root of every error ragloom raises on purpose."""

    code: ClassVar[str] = "ragloom"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class ConfigError(RagloomError):
    """A setting is missing or wrong; the message names it and says how to fix it."""

    code = "config"

    def __init__(self, message: str, *, setting: str | None = None, fix: str | None = None) -> None:
        parts = [message]
        if setting:
            parts.append(f"setting: {setting}")
        if fix:
            parts.append(f"fix: {fix}")
        super().__init__("; ".join(parts))
        self.setting = setting
        self.fix = fix


class AuthenticationError(ConfigError):
    """The provider refused the credentials (401/403)."""

    code = "auth"


class ProviderError(RagloomError):
    """A model provider (chat or embeddings) failed."""

    code = "provider"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BadRequestError(ProviderError):
    code = "bad_request"


class RateLimitError(ProviderError):
    code = "rate_limited"
    retryable = True

    def __init__(
        self, message: str, *, status: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ProviderUnavailableError(ProviderError):
    code = "unavailable"
    retryable = True


class ProviderTimeoutError(ProviderError):
    code = "timeout"
    retryable = True


class MalformedResponseError(ProviderError):
    code = "malformed"


class DeadlineExceededError(ProviderError):
    """Retries stopped because the total deadline passed."""

    code = "deadline"


class StoreError(RagloomError):
    """A document store failed."""

    code = "store"


class StoreUnavailableError(StoreError):
    code = "store_unavailable"
    retryable = True


class StoreWriteError(StoreError):
    """Some chunks were not stored, even after retries: `failed` maps each chunk id to its
    reason, `sources` names their sources. Writes are idempotent, so re-running is safe."""

    code = "store_write"

    def __init__(
        self, message: str, *, failed: Mapping[str, str], sources: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.failed = dict(failed)
        self.sources = sorted(set(sources))


class IngestError(RagloomError):
    """One input file could not be ingested; ingestion reports it and goes on."""

    code = "ingest"

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class UnsupportedFileError(IngestError):
    code = "unsupported_file"


class EmptyFileError(IngestError):
    code = "empty_file"


class DecodeError(IngestError):
    code = "decode_error"


class FileTooLargeError(IngestError):
    code = "file_too_large"


class ParseError(IngestError):
    code = "parse_error"


class InvalidQueryError(RagloomError):
    """A question or search query that cannot be asked (empty, or nothing but control
    characters); the message says what is wrong, never echoes the text."""

    code = "invalid_query"


class BudgetExceededError(RagloomError):
    """A run used up one of its limits (steps, tokens, seconds, cost)."""

    code = "budget_exceeded"

    def __init__(self, limit: str, used: float, allowed: float) -> None:
        super().__init__(f"{limit} budget exhausted: used {used:g} of {allowed:g}")
        self.limit = limit
        self.used = used
        self.allowed = allowed


class ArtefactError(RagloomError):
    """A compiled prompt artefact is missing, stale or unreadable."""

    code = "artefact"
