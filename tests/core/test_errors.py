"""The error tree and the mapping of openai / httpx exceptions onto it."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

import ragloom.core.errors as errors
from ragloom.core.errors import (
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConfigError,
    DeadlineExceededError,
    MalformedResponseError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RagloomError,
    RateLimitError,
    StoreUnavailableError,
)
from ragloom.core.retry import map_openai_error, parse_retry_after

ALL = [obj for obj in vars(errors).values()
       if isinstance(obj, type) and issubclass(obj, RagloomError)]


def test_codes_are_unique_and_retryable_set_is_exact() -> None:
    codes = [cls.code for cls in ALL]
    assert len(codes) == len(set(codes))
    retryable = {cls.code for cls in ALL if cls.retryable}
    assert retryable == {"rate_limited", "unavailable", "timeout", "store_unavailable"}


def test_config_error_names_setting_and_fix() -> None:
    err = ConfigError("no key", setting="llm.api_key", fix="set RAGLOOM_LLM__API_KEY")
    assert err.setting == "llm.api_key"
    assert "llm.api_key" in str(err) and "RAGLOOM_LLM__API_KEY" in str(err)
    assert str(err).startswith("[config]")
    assert issubclass(AuthenticationError, ConfigError)


def test_budget_error_says_which_limit() -> None:
    err = BudgetExceededError("tokens", 120, 100)
    assert err.limit == "tokens" and err.used == 120 and err.allowed == 100
    assert "tokens budget exhausted" in str(err)


def _request() -> httpx.Request:
    return httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")


def _status(status: int, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    response = httpx.Response(status, headers=headers or {}, request=_request(),
                              json={"error": {"message": f"boom {status}"}})
    cls = {400: openai.BadRequestError, 401: openai.AuthenticationError,
           403: openai.PermissionDeniedError, 404: openai.NotFoundError,
           422: openai.UnprocessableEntityError, 429: openai.RateLimitError,
           500: openai.InternalServerError, 503: openai.InternalServerError}[status]
    return cls(f"boom {status}", response=response, body={"error": {"message": f"boom {status}"}})


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_become_config_errors_naming_the_key(status: int) -> None:
    err = map_openai_error(_status(status))
    assert isinstance(err, AuthenticationError) and isinstance(err, ConfigError)
    assert err.setting == "llm.api_key"
    assert "RAGLOOM_LLM__API_KEY" in str(err) and "OPENAI_API_KEY" in str(err)
    assert not err.retryable


@pytest.mark.parametrize("status", [400, 404, 422])
def test_client_errors_are_bad_requests(status: int) -> None:
    err = map_openai_error(_status(status))
    assert type(err) is BadRequestError
    assert err.status == status and not err.retryable
    assert f"boom {status}" in str(err)


def test_rate_limit_carries_retry_after() -> None:
    err = map_openai_error(_status(429, {"retry-after": "2.5"}))
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 2.5 and err.retryable
    no_header = map_openai_error(_status(429))
    assert isinstance(no_header, RateLimitError) and no_header.retry_after is None
    in_ms = map_openai_error(_status(429, {"retry-after-ms": "1500"}))
    assert isinstance(in_ms, RateLimitError) and in_ms.retry_after == 1.5


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retryable_unavailability(status: int) -> None:
    err = map_openai_error(_status(status))
    assert type(err) is ProviderUnavailableError and err.retryable and err.status == status


def test_timeouts_connection_errors_and_bad_json() -> None:
    assert type(map_openai_error(openai.APITimeoutError(_request()))) is ProviderTimeoutError
    assert type(map_openai_error(httpx.ReadTimeout("slow"))) is ProviderTimeoutError
    connection = map_openai_error(openai.APIConnectionError(request=_request()))
    assert type(connection) is ProviderUnavailableError and connection.retryable
    assert type(map_openai_error(httpx.ConnectError("refused"))) is ProviderUnavailableError
    bad_json = map_openai_error(json.JSONDecodeError("Expecting value", "{", 1))
    assert type(bad_json) is MalformedResponseError and not bad_json.retryable


def test_ragloom_errors_pass_through_and_unknowns_become_provider_errors() -> None:
    original = StoreUnavailableError("down")
    assert map_openai_error(original) is original
    unknown = map_openai_error(RuntimeError("weird"))
    assert type(unknown) is ProviderError and "weird" in str(unknown)
    assert not isinstance(map_openai_error(RuntimeError("x")), DeadlineExceededError)


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
