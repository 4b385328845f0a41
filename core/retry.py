"""The one retry policy (tenacity), used by the LLM gateway and the stores.

Only errors whose `retryable` is True are retried (`RateLimitError`, `ProviderUnavailableError`,
`ProviderTimeoutError`, `StoreUnavailableError`); a 400 or an auth error fails at once.
Waits grow exponentially with jitter; a `RateLimitError.retry_after` is honoured exactly (capped).
Attempts are capped (`max_retries` after the first) and so is the total time: when the next wait
would cross the deadline the call stops with `DeadlineExceededError`; when attempts run out, the
last (typed) error is raised. Every retry is logged.

`map_openai_error` turns openai SDK / httpx exceptions into `ragloom.core.errors` types.

Sync and async calls share one implementation: a call is written once as a generator of *steps*
(`Call`, `Next`, `Pause`, `Emit`) and `RetryPolicy.steps` wraps an attempt in retries and error
mapping inside such a generator. Four small drivers run a step generator: `run` / `stream`
(sync: call, `next`, `time.sleep`) and `arun` / `astream` (async: await, `anext`, `asyncio.sleep`).
The drivers are the only sync/async twins; what a call does (cache, retries, mapping, usage,
logs) is written once.
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from tenacity import AsyncRetrying, RetryCallState, Retrying

from ragloom.core.errors import (
    AuthenticationError,
    BadRequestError,
    DeadlineExceededError,
    MalformedResponseError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RagloomError,
    RateLimitError,
)
from ragloom.core.logging import redact_text

log = structlog.get_logger(__name__)

T = TypeVar("T")
Clock = Callable[[], float]

API_KEY_FIX = (
    "set RAGLOOM_LLM__API_KEY (or OPENAI_API_KEY) to a valid key for this provider, "
    "or llm.api_key in ragloom.toml"
)


def is_retryable(exc: BaseException) -> bool:
    """True for ragloom errors marked retryable (429, 5xx, timeouts, connection, UNAVAILABLE)."""
    return isinstance(exc, RagloomError) and exc.retryable is True


class RetryPolicy:
    """Exponential backoff with jitter, Retry-After, attempt cap and total deadline.

    `retrying()` / `async_retrying()` return fresh tenacity controllers (one per call: the
    deadline starts when they are made); `call` / `acall` run a function under them.
    `clock`, `sleep` and `asleep` are injectable so tests need not wait.
    """

    def __init__(
        self,
        max_retries: int = 4,
        deadline: float | None = 120.0,
        *,
        initial_wait: float = 0.5,
        max_wait: float = 20.0,
        jitter: float = 0.5,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        operation: str = "call",
        rng: random.Random | None = None,
    ) -> None:
        self.max_retries = max_retries
        self.deadline = deadline
        self.initial_wait = initial_wait
        self.max_wait = max_wait
        self.jitter = jitter
        self.clock = clock
        self.sleep = sleep
        self.asleep = asleep
        self.operation = operation
        self._rng = rng or random.Random()

    # -- tenacity hooks ------------------------------------------------------------------------

    def wait_for(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        retry_after = getattr(exc, "retry_after", None)  # 429, and 503s that send one
        if isinstance(retry_after, int | float):
            return max(0.0, min(float(retry_after), self.max_wait))
        backoff = self.initial_wait * 2 ** (attempt - 1)
        return min(self.max_wait, backoff + self._rng.uniform(0, self.jitter))

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return self.wait_for(state.attempt_number, exc)

    def _controller_kwargs(self, started: float) -> dict[str, Any]:
        expired = {"deadline": False}

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number > self.max_retries:
                return True
            if self.deadline is not None:
                elapsed = self.clock() - started
                if elapsed + state.upcoming_sleep >= self.deadline:
                    expired["deadline"] = True
                    return True
            return False

        def give_up(state: RetryCallState) -> Any:
            exc = state.outcome.exception() if state.outcome else None
            assert exc is not None
            if expired["deadline"]:
                elapsed = self.clock() - started
                raise DeadlineExceededError(
                    f"{self.operation}: gave up after {state.attempt_number} attempt(s) in "
                    f"{elapsed:.2f}s (deadline {self.deadline:g}s); last error: {exc}",
                    status=getattr(exc, "status", None),
                ) from exc
            log.warning("retry.exhausted", operation=self.operation,
                        attempt=state.attempt_number, error=code_of(exc))
            raise exc

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "retry",
                operation=self.operation,
                attempt=state.attempt_number,
                wait=round(state.upcoming_sleep, 3),
                error=code_of(exc),
                status=getattr(exc, "status", None),
            )

        return {
            "retry": lambda state: bool(state.outcome and state.outcome.failed
                                        and is_retryable(state.outcome.exception())),
            "wait": self._wait,
            "stop": stop,
            "retry_error_callback": give_up,
            "before_sleep": before_sleep,
        }

    # -- public --------------------------------------------------------------------------------

    def retrying(self) -> Retrying:
        """A fresh sync controller: `for attempt in policy.retrying(): with attempt: ...`."""
        return Retrying(sleep=self.sleep, **self._controller_kwargs(self.clock()))

    def async_retrying(self) -> AsyncRetrying:
        """A fresh async controller: `async for attempt in policy.async_retrying(): ...`."""
        return AsyncRetrying(sleep=self.asleep, **self._controller_kwargs(self.clock()))

    def remaining(self, started: float) -> float | None:
        """Seconds left of the deadline for a call that started at `started`."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - (self.clock() - started))

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn` under the policy; returns its result or raises a typed error."""
        return self.retrying()(fn, *args, **kwargs)

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await `fn` under the policy."""
        return await self.async_retrying()(fn, *args, **kwargs)

    def steps(self, body: Callable[[], Steps[T]], tally: Tally) -> Steps[T]:
        """Steps that run `body` (itself steps) under the policy: retried, errors mapped.

        `tally.attempts` counts the attempts made. Waits between attempts are `Pause` steps,
        so the driver sleeps the way its caller can (`time.sleep` or `await asyncio.sleep`).
        """
        pending: list[float] = []
        controller = Retrying(sleep=lambda seconds: pending.append(float(seconds)),
                              **self._controller_kwargs(self.clock()))
        for attempt in controller:
            if pending:
                yield Pause(pending.pop())
            with attempt:
                tally.attempts += 1
                result = yield from mapped(body())
        return result


# -- one implementation for sync and async: steps and their drivers ------------------------------


@dataclass(slots=True)
class Call:
    """Call `fn()`; the async drivers await what it returns when that is awaitable."""

    fn: Callable[[], Any]


@dataclass(slots=True)
class Next:
    """The next item of `iterator` (None at its end): `next` or `anext`."""

    iterator: Any


@dataclass(slots=True)
class Pause:
    """Wait `seconds` (the policy's backoff)."""

    seconds: float


@dataclass(slots=True)
class Emit:
    """Hand `value` to the consumer of a stream."""

    value: Any


Step = Call | Next | Pause | Emit
Steps = Generator[Step, Any, T]


@dataclass(slots=True)
class Tally:
    """Attempts made by `RetryPolicy.steps`."""

    attempts: int = 0


def mapped(steps: Steps[T]) -> Steps[T]:
    """`steps` with client exceptions turned into ragloom errors (`map_openai_error`)."""
    try:
        return (yield from steps)
    except RagloomError:
        raise
    except Exception as exc:
        raise map_openai_error(exc) from exc


def stream(steps: Steps[T], sleep: Callable[[float], None] = time.sleep) -> Generator[Any, None, T]:
    """Drive `steps` synchronously; yields what they `Emit`, returns what they return."""
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                step = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            value = error = None
            try:
                if isinstance(step, Call):
                    value = step.fn()
                elif isinstance(step, Next):
                    value = next(step.iterator, None)
                elif isinstance(step, Pause):
                    sleep(step.seconds)
                else:
                    yield step.value
            except Exception as exc:
                error = exc
    finally:
        steps.close()


def run(steps: Steps[T], sleep: Callable[[float], None] = time.sleep) -> T:
    """Drive `steps` synchronously to their result (they must not `Emit`)."""
    driver = stream(steps, sleep)
    try:
        next(driver)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    driver.close()
    raise RuntimeError("run() drove steps that emit: use stream()")


async def _astep(step: Step, asleep: Callable[[float], Awaitable[None]]) -> Any:
    if isinstance(step, Call):
        value = step.fn()
        return (await value) if inspect.isawaitable(value) else value
    if isinstance(step, Next):
        return await anext(step.iterator, None)
    assert isinstance(step, Pause)
    await asleep(step.seconds)
    return None


async def arun(steps: Steps[T], asleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> T:
    """Drive `steps` on the running event loop to their result (they must not `Emit`)."""
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                step = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            value = error = None
            if isinstance(step, Emit):
                raise RuntimeError("arun() drove steps that emit: use astream()")
            try:
                value = await _astep(step, asleep)
            except Exception as exc:
                error = exc
    finally:
        steps.close()


async def astream(
    steps: Steps[Any], asleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> AsyncIterator[Any]:
    """Drive `steps` on the running event loop; yields what they `Emit`."""
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                step = steps.send(value) if error is None else steps.throw(error)
            except StopIteration:
                return
            value = error = None
            if isinstance(step, Emit):
                yield step.value
                continue
            try:
                value = await _astep(step, asleep)
            except Exception as exc:
                error = exc
    finally:
        steps.close()


def iterate(steps: Steps[Any], sleep: Callable[[float], None] = time.sleep) -> Iterator[Any]:
    """`stream` typed as a plain iterator (its return value dropped)."""
    yield from stream(steps, sleep)


def retry_policy(
    max_retries: int = 4,
    deadline: float | None = 120.0,
    *,
    clock: Clock = time.monotonic,
    **options: Any,
) -> RetryPolicy:
    """The project's retry policy with the given caps (see `RetryPolicy` for options)."""
    return RetryPolicy(max_retries, deadline, clock=clock, **options)


def code_of(exc: BaseException | None) -> str | None:
    """A short error code for logs: the ragloom code, else the exception class name."""
    if exc is None:
        return None
    return getattr(exc, "code", None) or type(exc).__name__


# -- mapping client exceptions -------------------------------------------------------------------


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent/bad."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _headers(exc: BaseException) -> Any:
    response = getattr(exc, "response", None)
    return getattr(response, "headers", None) or {}


def _status_error(status: int, message: str, exc: BaseException) -> RagloomError:
    if status in (401, 403):
        return AuthenticationError(
            f"the provider refused the API key (HTTP {status}): {message}",
            setting="llm.api_key",
            fix=API_KEY_FIX,
        )
    if status == 429:
        headers = _headers(exc)
        retry_after = parse_retry_after(headers.get("retry-after"))
        if retry_after is None and headers.get("retry-after-ms"):
            retry_after = (parse_retry_after(headers.get("retry-after-ms")) or 0.0) / 1000
        return RateLimitError(f"rate limited: {message}", status=429, retry_after=retry_after)
    if status == 408:
        return ProviderTimeoutError(f"provider timed out (HTTP 408): {message}", status=status)
    if status >= 500:
        error = ProviderUnavailableError(f"provider error (HTTP {status}): {message}",
                                         status=status)
        error.retry_after = parse_retry_after(_headers(exc).get("retry-after"))  # type: ignore[attr-defined]
        return error
    return BadRequestError(f"request refused (HTTP {status}): {message}", status=status)


def map_openai_error(exc: BaseException) -> RagloomError:
    """Translate an openai SDK / httpx exception into the ragloom error tree.

    401/403 → AuthenticationError (names `llm.api_key`); 400/404/422 → BadRequestError;
    429 → RateLimitError (Retry-After parsed); 5xx → ProviderUnavailableError; timeouts →
    ProviderTimeoutError; connection errors → ProviderUnavailableError; bad JSON →
    MalformedResponseError. Ragloom errors pass through unchanged.
    """
    if isinstance(exc, RagloomError):
        return exc
    name = type(exc).__name__
    message = _short_message(exc)
    status = getattr(exc, "status_code", None)
    if status is None:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
    if isinstance(status, int) and _is_status_error(exc):
        return _status_error(status, message, exc)
    if "Timeout" in name or isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return ProviderTimeoutError(f"provider did not answer in time ({name})")
    if _is_connection_error(exc):
        return ProviderUnavailableError(f"provider unreachable ({name}): {message}")
    if isinstance(exc, json.JSONDecodeError) or "ValidationError" in name:
        return MalformedResponseError(f"provider sent a malformed response ({name}): {message}")
    return ProviderError(f"provider call failed ({name}): {message}", status=status)


def _short_message(exc: BaseException) -> str:
    """The provider's message, shortened, with secrets removed (some echo the key back)."""
    body = getattr(exc, "body", None)
    text = str(exc) or type(exc).__name__
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            text = str(inner["message"])
    return redact_text(text[:300])


def _is_status_error(exc: BaseException) -> bool:
    try:
        import httpx
        import openai
    except ImportError:  # pragma: no cover - both ship with langchain-openai
        return hasattr(exc, "status_code")
    return isinstance(exc, openai.APIStatusError | httpx.HTTPStatusError)


def _is_connection_error(exc: BaseException) -> bool:
    try:
        import httpx
        import openai
    except ImportError:  # pragma: no cover
        return isinstance(exc, ConnectionError)
    return isinstance(
        exc, openai.APIConnectionError | httpx.TransportError | ConnectionError | EOFError
    )
