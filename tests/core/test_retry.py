"""The retry policy, with a fake clock: nothing here really sleeps."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from ragloom.core.errors import (
    AuthenticationError,
    BadRequestError,
    DeadlineExceededError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    StoreUnavailableError,
)
from ragloom.core.retry import (
    Call,
    Emit,
    RetryPolicy,
    Steps,
    Tally,
    arun,
    astream,
    iterate,
    retry_policy,
    run,
)
from tests.core.conftest import FakeClock


def _policy(clock: FakeClock, **kwargs: object) -> RetryPolicy:
    options: dict[str, object] = {"max_retries": 4, "deadline": 100.0}
    options.update(kwargs)
    return retry_policy(clock=clock, sleep=clock.sleep, asleep=clock.asleep,
                        rng=random.Random(7), **options)  # type: ignore[arg-type]


def _failing(errors: list[Exception], result: str = "ok") -> tuple[Callable[[], str], list[int]]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return result

    return fn, calls


@pytest.mark.parametrize("error", [
    RateLimitError("429"), ProviderUnavailableError("503"), ProviderTimeoutError("slow"),
    StoreUnavailableError("grpc UNAVAILABLE"),
])
def test_retryable_errors_are_retried_until_success(
    fake_clock: FakeClock, error: Exception
) -> None:
    fn, calls = _failing([error, error])
    assert _policy(fake_clock).call(fn) == "ok"
    assert len(calls) == 3
    assert len(fake_clock.sleeps) == 2


@pytest.mark.parametrize("error", [
    BadRequestError("400", status=400),
    AuthenticationError("401", setting="llm.api_key"),
    ValueError("a bug, not an outage"),
])
def test_non_retryable_errors_fail_at_once(fake_clock: FakeClock, error: Exception) -> None:
    fn, calls = _failing([error])
    with pytest.raises(type(error)):
        _policy(fake_clock).call(fn)
    assert len(calls) == 1
    assert fake_clock.sleeps == []


def test_backoff_is_exponential_with_bounded_jitter(fake_clock: FakeClock) -> None:
    errors: list[Exception] = [ProviderUnavailableError("x") for _ in range(4)]
    fn, _ = _failing(errors)
    _policy(fake_clock, initial_wait=0.5, jitter=0.25, max_wait=100).call(fn)
    assert len(fake_clock.sleeps) == 4
    for attempt, slept in enumerate(fake_clock.sleeps, start=1):
        base = 0.5 * 2 ** (attempt - 1)
        assert base <= slept <= base + 0.25


def test_waits_are_capped(fake_clock: FakeClock) -> None:
    errors: list[Exception] = [ProviderUnavailableError("x") for _ in range(6)]
    fn, _ = _failing(errors)
    _policy(fake_clock, max_retries=6, initial_wait=1, max_wait=3, deadline=None).call(fn)
    assert max(fake_clock.sleeps) == 3


def test_retry_after_is_honoured_exactly_and_capped(fake_clock: FakeClock) -> None:
    fn, _ = _failing([RateLimitError("429", retry_after=0), RateLimitError("429", retry_after=7),
                      RateLimitError("429", retry_after=500)])
    _policy(fake_clock, max_wait=30).call(fn)
    assert fake_clock.sleeps == [0.0, 7.0, 30.0]


def test_exhausted_attempts_raise_the_last_typed_error(fake_clock: FakeClock) -> None:
    errors: list[Exception] = [RateLimitError(f"429 #{i}", retry_after=0) for i in range(10)]
    fn, calls = _failing(errors)
    with pytest.raises(RateLimitError, match="#3"):
        _policy(fake_clock, max_retries=3).call(fn)
    assert len(calls) == 4


def test_zero_retries_means_one_attempt(fake_clock: FakeClock) -> None:
    fn, calls = _failing([ProviderUnavailableError("x")])
    with pytest.raises(ProviderUnavailableError):
        _policy(fake_clock, max_retries=0).call(fn)
    assert len(calls) == 1


def test_total_deadline_stops_retries(fake_clock: FakeClock) -> None:
    calls: list[float] = []

    def slow_failure() -> str:
        calls.append(fake_clock.now)
        fake_clock.advance(1.0)  # each attempt takes a second, then times out
        raise ProviderTimeoutError("timed out")

    policy = _policy(fake_clock, max_retries=50, deadline=3.5, initial_wait=0.1, jitter=0.0)
    started = fake_clock.now
    with pytest.raises(DeadlineExceededError) as info:
        policy.call(slow_failure)
    assert isinstance(info.value.__cause__, ProviderTimeoutError)
    assert fake_clock.now - started <= 3.5
    assert 2 <= len(calls) < 50


def test_deadline_counts_a_long_retry_after(fake_clock: FakeClock) -> None:
    fn, calls = _failing([RateLimitError("429", retry_after=20)])
    with pytest.raises(DeadlineExceededError):
        _policy(fake_clock, deadline=10.0, max_wait=60).call(fn)
    assert len(calls) == 1
    assert fake_clock.sleeps == []  # it does not sleep past the deadline first


def test_remaining_deadline(fake_clock: FakeClock) -> None:
    policy = _policy(fake_clock, deadline=5.0)
    started = fake_clock.now
    fake_clock.advance(2.0)
    assert policy.remaining(started) == 3.0
    fake_clock.advance(10.0)
    assert policy.remaining(started) == 0.0
    assert _policy(fake_clock, deadline=None).remaining(started) is None


def test_each_retry_is_logged(fake_clock: FakeClock) -> None:
    fn, _ = _failing([RateLimitError("429", retry_after=0), ProviderUnavailableError("503")])
    with capture_logs() as logs:
        _policy(fake_clock).call(fn)
    retries = [entry for entry in logs if entry["event"] == "retry"]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert [r["error"] for r in retries] == ["rate_limited", "unavailable"]
    assert retries[0]["wait"] == 0.0
    assert all(r["log_level"] == "warning" for r in retries)


def test_for_loop_form_counts_attempts(fake_clock: FakeClock) -> None:
    fn, _ = _failing([ProviderUnavailableError("x")])
    attempts = 0
    for attempt in _policy(fake_clock).retrying():
        with attempt:
            attempts += 1
            fn()
    assert attempts == 2


async def test_async_policy(fake_clock: FakeClock) -> None:
    errors: list[Exception] = [RateLimitError("429", retry_after=1), ProviderTimeoutError("t")]

    async def fn() -> str:
        if errors:
            raise errors.pop(0)
        return "done"

    assert await _policy(fake_clock).acall(fn) == "done"
    assert fake_clock.sleeps[0] == 1.0 and len(fake_clock.sleeps) == 2


async def test_async_non_retryable(fake_clock: FakeClock) -> None:
    calls = 0

    async def fn() -> str:
        nonlocal calls
        calls += 1
        raise BadRequestError("bad", status=400)

    with pytest.raises(BadRequestError):
        await _policy(fake_clock).acall(fn)
    assert calls == 1


# -- one implementation, two drivers: steps run the same sync and async ------------------------


def _call_steps(policy: RetryPolicy, fn: Callable[[], object], tally: Tally,
                finished: list[str]) -> Steps[object]:
    def attempt() -> Steps[object]:
        return (yield Call(fn))

    try:
        return (yield from policy.steps(attempt, tally))
    finally:
        finished.append("done")


def _async(fn: Callable[[], object]) -> Callable[[], object]:
    async def call() -> object:
        return fn()

    return call


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_steps_retry_and_map_errors_the_same_under_both_drivers(
    fake_clock: FakeClock, driver: str
) -> None:
    import asyncio

    import httpx

    policy = _policy(fake_clock)
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    fn, calls = _failing([RateLimitError("slow down", status=429, retry_after=2.0),
                          httpx.ConnectError("refused", request=request)])
    tally, finished = Tally(), []
    steps = _call_steps(policy, fn if driver == "sync" else _async(fn), tally, finished)
    result = run(steps, policy.sleep) if driver == "sync" else asyncio.run(
        arun(steps, policy.asleep))
    assert result == "ok" and len(calls) == 3 and tally.attempts == 3
    assert fake_clock.sleeps[0] == 2.0 and len(fake_clock.sleeps) == 2  # Retry-After honoured
    assert finished == ["done"]

    fn, calls = _failing([httpx.ReadTimeout("slow", request=request)] * 9)
    steps = _call_steps(_policy(fake_clock, max_retries=1), fn if driver == "sync"
                        else _async(fn), Tally(), finished)
    with pytest.raises(ProviderTimeoutError):  # mapped, not raw httpx
        run(steps) if driver == "sync" else asyncio.run(arun(steps, fake_clock.asleep))
    assert len(calls) == 2 and finished == ["done", "done"]


def test_stream_drivers_emit_in_order_and_finish_when_the_consumer_stops() -> None:
    import asyncio

    finished: list[str] = []

    def numbers() -> Steps[None]:
        try:
            for value in range(5):
                yield Emit(value)
        finally:
            finished.append("closed")

    assert list(iterate(numbers())) == [0, 1, 2, 3, 4]
    early = iterate(numbers())
    assert next(early) == 0
    early.close()  # the consumer stopped after one item: the steps' finally still ran
    assert finished == ["closed", "closed"]

    async def consume() -> list[object]:
        return [value async for value in astream(numbers())]

    assert asyncio.run(consume()) == [0, 1, 2, 3, 4] and len(finished) == 3
    with pytest.raises(RuntimeError, match="emit"):
        run(numbers())
