"""A small REST-connector-style HTTP core on httpx. It knows nothing of Zeebe or of Hugging Face.

A request goes out through one pooled `httpx.AsyncClient`; the answer comes back as an `HttpResult`
(`{status, headers, body}` with lower-case, flattened headers). The body is parsed JSON when it is
JSON, text when it is text, and base64 with its content type when it is binary, so an image or an
audio clip never crashes a decoder. Every way a call can go wrong is one `HttpError` subclass.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from worker.destinations import BlockedDestinationError, DestinationGuard

_TEXT_TYPES = ("text/", "application/xml", "application/x-www-form-urlencoded", "application/javascript")
_MAX_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class HttpRequest:
    url: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    json_body: Any = None
    content: bytes | None = None
    connect_timeout: float = 30.0
    read_timeout: float = 120.0

    @property
    def total_timeout(self) -> float:
        """The whole call, body included: a body that trickles forever must end too."""
        return self.connect_timeout + self.read_timeout


@dataclass(frozen=True, slots=True)
class HttpResult:
    status: int
    reason: str
    headers: dict[str, str]
    body: Any
    elapsed_seconds: float

    def as_variable(self) -> dict[str, Any]:
        return {"status": self.status, "headers": self.headers, "body": self.body}


class HttpError(Exception):
    """The call did not produce a usable HTTP answer."""


class HttpTimeoutError(HttpError):
    def __init__(self, phase: str, seconds: float) -> None:
        super().__init__(f"no {phase} within {seconds:g} s")
        self.phase = phase
        self.seconds = seconds


class HttpConnectionError(HttpError):
    """The connection failed or broke (refused, reset, closed mid-body, unknown host)."""


class ResponseTooLargeError(HttpError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the response is larger than the limit of {limit} bytes")
        self.limit = limit


class InvalidResponseError(HttpError):
    """The server said JSON but sent something that is not."""


class DestinationNotAllowedError(HttpError):
    """The outbound rules forbid the host."""


class HttpCore:
    def __init__(
        self,
        *,
        max_response_bytes: int,
        guard: DestinationGuard | None = None,
        follow_redirects: bool = False,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.max_response_bytes = max_response_bytes
        self.guard = guard or DestinationGuard()
        self.follow_redirects = follow_redirects
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,  # redirects are followed here, so each hop passes the guard
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, request: HttpRequest) -> HttpResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(request.total_timeout):
                response, body = await self._send_following_redirects(request)
        except TimeoutError:
            raise HttpTimeoutError("complete response", request.total_timeout) from None
        return HttpResult(
            status=response.status_code,
            reason=response.reason_phrase,
            headers=flatten_headers(response.headers),
            body=body,
            elapsed_seconds=time.perf_counter() - started,
        )

    async def _send_following_redirects(self, request: HttpRequest) -> tuple[httpx.Response, Any]:
        url, method, headers, hops = request.url, request.method, dict(request.headers), 0
        while True:
            await self._check_destination(url)
            response, body = await self._send_once(request, url, method, headers)
            if not (self.follow_redirects and response.is_redirect) or hops >= _MAX_REDIRECTS:
                return response, body
            hops += 1
            next_url = response.url.join(response.headers["location"])
            if _origin(next_url) != _origin(response.url):
                # The token belongs to the host it was meant for, never to where a redirect points.
                headers.pop("authorization", None)
            url = str(next_url)
            if response.status_code == 303:
                method = "GET"

    async def _check_destination(self, url: str) -> None:
        try:
            await self.guard.check(url)
        except BlockedDestinationError as exc:
            raise DestinationNotAllowedError(str(exc)) from None

    async def _send_once(
        self, request: HttpRequest, url: str, method: str, headers: dict[str, str]
    ) -> tuple[httpx.Response, Any]:
        timeout = httpx.Timeout(request.read_timeout, connect=request.connect_timeout)
        http_request = self._client.build_request(
            method,
            url,
            headers=headers,
            json=request.json_body if request.content is None else None,
            content=request.content,
            timeout=timeout,
        )
        try:
            response = await self._client.send(http_request, stream=True)
            try:
                raw = await self._read_capped(response)
            finally:
                await response.aclose()
        except httpx.ConnectTimeout:
            raise HttpTimeoutError("connection", request.connect_timeout) from None
        except httpx.TimeoutException:
            raise HttpTimeoutError("response", request.read_timeout) from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise HttpConnectionError(_describe_transport_error(exc)) from None
        return response, decode_body(raw, response.headers.get("content-type", ""))

    async def _read_capped(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_response_bytes:
            raise ResponseTooLargeError(self.max_response_bytes)
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_response_bytes:
                raise ResponseTooLargeError(self.max_response_bytes)
            chunks.append(chunk)
        return b"".join(chunks)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def flatten_headers(headers: httpx.Headers) -> dict[str, str]:
    flat: dict[str, str] = {}
    for name, value in headers.multi_items():
        key = name.lower()
        flat[key] = f"{flat[key]}, {value}" if key in flat else value
    return flat


def decode_body(raw: bytes, content_type: str) -> Any:
    """JSON when it says JSON, text when it is text, otherwise base64 with its content type."""
    media_type = content_type.split(";")[0].strip().lower()
    if not raw:
        return None
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidResponseError(
                f"the server declared {media_type} but the body is not valid JSON ({exc})"
            ) from None
    if media_type.startswith(_TEXT_TYPES) or (not media_type and _looks_like_text(raw)):
        text = raw.decode(_charset(content_type), errors="replace")
        return _json_or_text(text) if not media_type else text
    return binary_body(raw, media_type or "application/octet-stream")


def binary_body(raw: bytes, media_type: str) -> dict[str, Any]:
    return {
        "contentType": media_type,
        "encoding": "base64",
        "size": len(raw),
        "data": base64.b64encode(raw).decode("ascii"),
    }


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _looks_like_text(raw: bytes) -> bool:
    head = raw[:1024]
    try:
        # An incremental decoder tolerates a character cut in half at the end of the sample.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head


def _charset(content_type: str) -> str:
    """The declared charset when Python knows it, else UTF-8 (a server's typo must not fail the job)."""
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            try:
                return codecs.lookup(value.strip('"')).name
            except LookupError:
                return "utf-8"
    return "utf-8"


def _describe_transport_error(exc: Exception) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect: {exc}" if str(exc) else "could not connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server closed the connection before the response was complete ({exc})"
    if isinstance(exc, httpx.ReadError):
        return f"the connection broke while reading the response ({str(exc) or 'reset by peer'})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
