"""What went wrong with a Hugging Face call, whether retrying can help, and when to retry.

Codes follow Camunda's connectors: the HTTP status as a string ("404"), "408" for a timeout.
Messages carry Hugging Face's own error text and then what the modeller can do about it.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.http_core import (
    DestinationNotAllowedError,
    HttpConnectionError,
    HttpError,
    HttpResult,
    HttpTimeoutError,
    InvalidRequestError,
    InvalidResponseError,
    ResponseHeadTooLargeError,
    ResponseTooLargeError,
    TooManyRedirectsError,
)

_RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_RATELIMIT_RESET = re.compile(r"\bt=(\d+(?:\.\d+)?)")
_ADVICE = {
    400: "The input does not fit the model's task: check the input's shape for this model.",
    401: "The API key was refused: check authentication.token (or the worker's HF_TOKEN).",
    402: "Payment required: the account's credits are used up; add credits or bill an organisation (billTo).",
    403: "The token may not use this model: give it the inference permission, or accept the gated "
    "model's terms on huggingface.co.",
    404: "The model is not deployed on this provider: check the model id, or pick another provider.",
    410: "This endpoint is gone: use the router (https://router.huggingface.co).",
    413: "The input is too large for the model.",
    422: "The request was rejected as invalid: check the input and parameters for this model.",
    429: "Rate limited by Hugging Face: the job is retried after a pause.",
    503: "The model is loading or the service is overloaded: the job is retried after a pause.",
    504: "Hugging Face timed out: the job is retried; long generations may need a dedicated endpoint.",
}


@dataclass(frozen=True, slots=True)
class CallFailure:
    code: str
    message: str
    retryable: bool
    retry_after_seconds: float | None = None
    response: dict[str, Any] | None = None


def failure_from_response(result: HttpResult, response_variable: dict[str, Any], max_wait: float) -> CallFailure:
    status = result.status
    text = error_text(result.body) or result.reason or "error"
    advice = _ADVICE.get(status, "")
    message = f"Hugging Face answered {status} {result.reason}: {text}".rstrip() + (f". {advice}" if advice else "")
    retryable = status in _RETRYABLE_STATUSES or status >= 500
    wait = retry_after(result.headers, result.body, max_wait) if retryable else None
    return CallFailure(str(status), message, retryable, wait, response_variable)


def failure_from_http_error(error: HttpError) -> CallFailure:
    if isinstance(error, HttpTimeoutError):
        setting = "connectionTimeoutInSeconds" if error.phase == "connection" else "readTimeoutInSeconds"
        return CallFailure(
            "408",
            f"Hugging Face did not answer in time: {error}. Raise {setting} if the model needs longer.",
            retryable=True,
        )
    if isinstance(error, ResponseTooLargeError):
        return CallFailure(
            "RESPONSE_TOO_LARGE",
            f"The response is too large: {error}. Raise HF_CONNECTOR_MAX_RESPONSE_BYTES, or ask for less "
            "(smaller images, fewer tokens).",
            retryable=False,
        )
    if isinstance(error, TooManyRedirectsError):
        return CallFailure("TOO_MANY_REDIRECTS", f"The call was redirected too often: {error}.", retryable=False)
    if isinstance(error, ResponseHeadTooLargeError):
        return CallFailure("RESPONSE_HEAD_TOO_LARGE", f"The server's answer was refused: {error}.", retryable=False)
    if isinstance(error, InvalidRequestError):
        return CallFailure("INVALID_REQUEST", f"The call was not made: {error}.", retryable=False)
    if isinstance(error, DestinationNotAllowedError):
        return CallFailure("BLOCKED_DESTINATION", f"The call was not made: {error}.", retryable=False)
    if isinstance(error, InvalidResponseError):
        return CallFailure("INVALID_RESPONSE", f"Hugging Face sent an invalid response: {error}.", retryable=True)
    if isinstance(error, HttpConnectionError):
        return CallFailure("CONNECTION_ERROR", f"The call to Hugging Face failed: {error}.", retryable=True)
    return CallFailure("HTTP_ERROR", f"The call to Hugging Face failed: {error}.", retryable=True)


def error_text(body: Any) -> str:
    """Hugging Face's own words from an error body, whatever shape the provider uses."""
    if isinstance(body, str):
        return body.strip()[:1000]
    if not isinstance(body, Mapping):
        return ""
    error = body.get("error", body.get("message", body.get("detail")))
    if isinstance(error, str):
        return error
    if isinstance(error, Mapping):
        return str(error.get("message") or error)
    if isinstance(error, list):
        return "; ".join(_item_text(item) for item in error)
    return ""


def _item_text(item: Any) -> str:
    if isinstance(item, Mapping) and "msg" in item:
        location = ".".join(str(part) for part in item.get("loc", []))
        return f"{location}: {item['msg']}" if location else str(item["msg"])
    return str(item)


def retry_after(headers: Mapping[str, str], body: Any, max_wait: float) -> float | None:
    """Seconds the server asks us to wait: Retry-After, the RateLimit header, or `estimated_time`."""
    candidates = [
        _retry_after_header(headers.get("retry-after")),
        _ratelimit_reset(headers.get("ratelimit")),
        _estimated_time(body),
    ]
    waits = [w for w in candidates if w is not None]
    return min(max(waits), max_wait) if waits else None


def _retry_after_header(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(parsed.timestamp() - time.time(), 0.0)


def _ratelimit_reset(value: str | None) -> float | None:
    match = _RATELIMIT_RESET.search(value or "")
    return float(match.group(1)) if match else None


def _estimated_time(body: Any) -> float | None:
    if isinstance(body, Mapping) and isinstance(body.get("estimated_time"), int | float):
        return max(float(body["estimated_time"]), 0.0)
    return None
