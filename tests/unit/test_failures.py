"""What a failed Hugging Face call becomes: code, message, whether to retry and when."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import pytest

from hf_connector.http_core import (
    DestinationNotAllowedError,
    HttpConnectionError,
    HttpResult,
    HttpTimeoutError,
    InvalidResponseError,
    ResponseTooLargeError,
)
from hf_connector.huggingface.failures import error_text, failure_from_http_error, failure_from_response, retry_after

MAX_WAIT = 300.0


def _result(status: int, body: Any = None, headers: dict[str, str] | None = None, reason: str = "") -> HttpResult:
    return HttpResult(status=status, reason=reason, headers=headers or {}, body=body, elapsed_seconds=0.01)


def _fail(status: int, body: Any = None, headers: dict[str, str] | None = None, reason: str = "", max_wait=MAX_WAIT):
    result = _result(status, body, headers, reason)
    return failure_from_response(result, result.as_variable(), max_wait)


def test_a_loading_model_is_retried_after_its_estimated_time() -> None:
    failure = _fail(503, {"error": "Model facebook/bart-large-cnn is currently loading", "estimated_time": 20.0})
    assert failure.code == "503"
    assert failure.retryable
    assert failure.retry_after_seconds == 20.0
    assert "currently loading" in failure.message
    assert "retried" in failure.message


def test_the_estimated_time_is_capped_by_the_configured_maximum() -> None:
    failure = _fail(503, {"error": "loading", "estimated_time": 5000.0}, max_wait=60)
    assert failure.retry_after_seconds == 60


def test_a_rate_limit_honours_retry_after_in_seconds() -> None:
    failure = _fail(429, {"error": "Too many requests"}, {"retry-after": "17"}, reason="Too Many Requests")
    assert failure.code == "429"
    assert failure.retryable
    assert failure.retry_after_seconds == 17
    assert "Rate limited" in failure.message


def test_a_rate_limit_honours_the_ratelimit_header_reset() -> None:
    failure = _fail(429, None, {"ratelimit": '"api";r=0;t=55'})
    assert failure.retry_after_seconds == 55


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 40, usegmt=True)
    wait = retry_after({"retry-after": when}, None, MAX_WAIT)
    assert wait is not None
    assert 35 <= wait <= 41


def test_a_retry_after_date_in_the_past_means_now() -> None:
    when = email.utils.formatdate(time.time() - 3600, usegmt=True)
    assert retry_after({"retry-after": when}, None, MAX_WAIT) == 0.0


def test_the_longest_of_several_hints_wins() -> None:
    headers = {"retry-after": "5", "ratelimit": '"api";r=0;t=30'}
    assert retry_after(headers, {"estimated_time": 12}, MAX_WAIT) == 30


def test_garbage_hints_are_ignored() -> None:
    assert retry_after({"retry-after": "soon", "ratelimit": "nothing here"}, {"estimated_time": "x"}, MAX_WAIT) is None


@pytest.mark.parametrize(
    ("status", "advice"),
    [
        (400, "check the input"),
        (401, "authentication.token"),
        (402, "credits"),
        (403, "gated"),
        (404, "model is not deployed"),
        (410, "router.huggingface.co"),
        (422, "check the input"),
    ],
)
def test_client_errors_are_not_retried_and_say_what_to_do(status: int, advice: str) -> None:
    failure = _fail(status, {"error": "something went wrong"}, {"retry-after": "30"})
    assert failure.code == str(status)
    assert not failure.retryable
    assert failure.retry_after_seconds is None
    assert "something went wrong" in failure.message
    assert advice in failure.message


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(status: int) -> None:
    assert _fail(status, "upstream trouble").retryable


def test_the_response_is_kept_for_the_error_expression() -> None:
    body = {"error": "Model not found"}
    failure = _fail(404, body, {"x-request-id": "abc"})
    assert failure.response == {"status": 404, "headers": {"x-request-id": "abc"}, "body": body}


def test_the_message_falls_back_to_the_reason_phrase() -> None:
    failure = _fail(502, None, reason="Bad Gateway")
    assert failure.message.startswith("Hugging Face answered 502 Bad Gateway: Bad Gateway")


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("  plain text error \n", "plain text error"),
        ({"error": "Input validation error"}, "Input validation error"),
        ({"error": ["first problem", "second problem"]}, "first problem; second problem"),
        ({"error": {"message": "nested message"}}, "nested message"),
        ({"message": "openai style"}, "openai style"),
        ({"detail": [{"loc": ["body", "inputs"], "msg": "field required"}]}, "body.inputs: field required"),
        ({"detail": [{"msg": "no location"}]}, "no location"),
        ([1, 2, 3], ""),
        ({"unrelated": True}, ""),
    ],
)
def test_hugging_face_error_texts_in_every_shape(body: Any, text: str) -> None:
    assert error_text(body) == text


def test_a_long_text_error_is_cut() -> None:
    assert len(error_text("x" * 5000)) == 1000


def test_a_read_timeout_is_408_and_says_to_raise_the_read_timeout() -> None:
    failure = failure_from_http_error(HttpTimeoutError("response", 120))
    assert failure.code == "408"
    assert failure.retryable
    assert "readTimeoutInSeconds" in failure.message
    assert "120" in failure.message


def test_a_connect_timeout_says_to_raise_the_connection_timeout() -> None:
    failure = failure_from_http_error(HttpTimeoutError("connection", 5))
    assert failure.code == "408"
    assert "connectionTimeoutInSeconds" in failure.message


def test_an_oversized_response_is_not_retried_and_names_the_setting() -> None:
    failure = failure_from_http_error(ResponseTooLargeError(1024))
    assert failure.code == "RESPONSE_TOO_LARGE"
    assert not failure.retryable
    assert "HF_CONNECTOR_MAX_RESPONSE_BYTES" in failure.message
    assert "1024" in failure.message


def test_a_blocked_destination_is_not_retried() -> None:
    failure = failure_from_http_error(DestinationNotAllowedError("host 'x' is blocked by HF_CONNECTOR_BLOCKED_HOSTS"))
    assert failure.code == "BLOCKED_DESTINATION"
    assert not failure.retryable
    assert "HF_CONNECTOR_BLOCKED_HOSTS" in failure.message


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (HttpConnectionError("could not connect"), "CONNECTION_ERROR"),
        (InvalidResponseError("not JSON"), "INVALID_RESPONSE"),
    ],
)
def test_connection_trouble_is_retried(error: Exception, code: str) -> None:
    failure = failure_from_http_error(error)  # type: ignore[arg-type]
    assert failure.code == code
    assert failure.retryable
    assert str(error) in failure.message
