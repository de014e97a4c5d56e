"""A small REST-connector-style HTTP core. It knows nothing of Zeebe or of Hugging Face.

A request is built as httpx builds it and goes out on the worker's own pooled HTTP/1.1 wire
(worker/http_transport.py), or through an `httpx.AsyncClient` behind a proxy; the answer comes back as an `HttpResult`
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
import urllib.request
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx

from worker.destinations import BlockedDestinationError, DestinationGuard
from worker.http_transport import ACCEPT_ENCODING, ConnectionPool, header_encoding

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


@dataclass(slots=True)
class _Answer:
    """One HTTP answer, whichever way it came: status, reason, flattened headers, decoded body."""

    status: int
    reason: str
    headers: dict[str, str]
    body: Any

    @property
    def is_redirect(self) -> bool:
        return 300 <= self.status <= 399 and "location" in self.headers


class HttpCore:
    """Sends `HttpRequest`s. By default over the worker's own connection pool (worker/http_transport.py),
    building each request as httpx would; with an httpx transport given (tests) or a proxy set in the
    environment, through an `httpx.AsyncClient`. Either way no cookie outlives its job."""

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
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        )
        self._wire: ConnectionPool | None = None
        if transport is None and not _proxy_in_environment():
            self._wire = ConnectionPool(max_connections=max_connections)
            defaults = {name.lower(): (name, value) for name, value in self._client.headers.items()}
            self._default_headers = defaults | {"accept-encoding": ("Accept-Encoding", ACCEPT_ENCODING)}

    async def aclose(self) -> None:
        if self._wire is not None:
            await self._wire.aclose()
        await self._client.aclose()

    async def send(self, request: HttpRequest) -> HttpResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(request.total_timeout):
                answer = await self._send_following_redirects(request)
        except TimeoutError:
            raise HttpTimeoutError("complete response", request.total_timeout) from None
        return HttpResult(
            status=answer.status,
            reason=answer.reason,
            headers=answer.headers,
            body=answer.body,
            elapsed_seconds=time.perf_counter() - started,
        )

    async def _send_following_redirects(self, request: HttpRequest) -> _Answer:
        url, method, headers, hops = request.url, request.method, dict(request.headers), 0
        while True:
            await self._check_destination(url)
            answer = await self._send_once(request, url, method, headers)
            if not (self.follow_redirects and answer.is_redirect) or hops >= _MAX_REDIRECTS:
                return answer
            hops += 1
            current = httpx.URL(url)
            next_url = current.join(answer.headers["location"])
            if _origin(next_url) != _origin(current):
                # The token belongs to the host it was meant for, never to where a redirect points.
                headers.pop("authorization", None)
            url = str(next_url)
            if answer.status == 303:
                method = "GET"

    async def _check_destination(self, url: str) -> None:
        try:
            await self.guard.check(url)
        except BlockedDestinationError as exc:
            raise DestinationNotAllowedError(str(exc)) from None

    async def _send_once(self, request: HttpRequest, url: str, method: str, headers: dict[str, str]) -> _Answer:
        try:
            if self._wire is not None:
                status, reason, flat, raw = await self._exchange_on_wire(self._wire, request, url, method, headers)
            else:
                status, reason, flat, raw = await self._exchange_with_httpx(request, url, method, headers)
        except httpx.ConnectTimeout:
            raise HttpTimeoutError("connection", request.connect_timeout) from None
        except httpx.TimeoutException:
            raise HttpTimeoutError("response", request.read_timeout) from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise HttpConnectionError(_describe_transport_error(exc)) from None
        return _Answer(status, reason, flat, decode_body(raw, flat.get("content-type", "")))

    async def _exchange_with_httpx(
        self, request: HttpRequest, url: str, method: str, headers: dict[str, str]
    ) -> tuple[int, str, dict[str, str], bytes]:
        timeout = httpx.Timeout(request.read_timeout, connect=request.connect_timeout)
        http_request = self._client.build_request(
            method,
            url,
            headers=headers,
            json=request.json_body if request.content is None else None,
            content=request.content,
            timeout=timeout,
        )
        response = await self._client.send(http_request, stream=True)
        try:
            raw = await self._read_capped(response.headers.get("content-length"), response.aiter_bytes())
        finally:
            await response.aclose()
        return response.status_code, response.reason_phrase, flatten_headers(response.headers), raw

    async def _exchange_on_wire(
        self, wire: ConnectionPool, request: HttpRequest, url: str, method: str, headers: dict[str, str]
    ) -> tuple[int, str, dict[str, str], bytes]:
        body, wire_headers = self._wire_request(method, request, headers)
        answer = await wire.request(
            method,
            url,
            wire_headers,
            body,
            connect_timeout=request.connect_timeout,
            read_timeout=request.read_timeout,
        )
        try:
            flat = flatten_raw_headers(answer.raw_headers)  # once: the length below is read from it too
            raw = await self._read_capped(flat.get("content-length"), answer.chunks())
        finally:
            answer.close()
        return answer.status, answer.reason, flat, raw

    def _wire_request(
        self, method: str, request: HttpRequest, headers: dict[str, str]
    ) -> tuple[bytes | None, dict[str, str]]:
        """The body and the headers httpx would send: its defaults, the caller's, then the body's."""
        merged = dict(self._default_headers)
        for name, value in headers.items():
            merged[name.lower()] = (name, value)
        body: bytes | None
        if request.content is not None:
            body = request.content
            content_headers = {"content-length": ("Content-Length", str(len(body)))}
        elif request.json_body is not None:
            body = json.dumps(request.json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
            content_headers = {
                "content-length": ("Content-Length", str(len(body))),
                "content-type": ("Content-Type", "application/json"),
            }
        else:
            body = None
            content_headers = {"content-length": ("Content-Length", "0")} if method in _BODY_METHODS else {}
        for key, item in content_headers.items():
            merged.setdefault(key, item)  # the caller's own Content-Type wins, as with httpx
        return body, dict(merged.values())

    async def _read_capped(self, declared: str | None, chunks: AsyncIterator[bytes]) -> bytes:
        if declared and declared.isdigit() and int(declared) > self.max_response_bytes:
            raise ResponseTooLargeError(self.max_response_bytes)
        parts, size = [], 0
        async for chunk in chunks:
            size += len(chunk)
            if size > self.max_response_bytes:
                raise ResponseTooLargeError(self.max_response_bytes)
            parts.append(chunk)
        return b"".join(parts)


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _proxy_in_environment() -> bool:
    """A proxy set by HTTP_PROXY / HTTPS_PROXY / ALL_PROXY, which only httpx's own transport speaks to."""
    return any(scheme in urllib.request.getproxies() for scheme in ("http", "https", "all"))


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def flatten_headers(headers: httpx.Headers) -> dict[str, str]:
    flat: dict[str, str] = {}
    for name, value in headers.multi_items():
        key = name.lower()
        flat[key] = f"{flat[key]}, {value}" if key in flat else value
    return flat


def flatten_raw_headers(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    """`flatten_headers` for raw header pairs, decoded as httpx decodes them."""
    encoding = header_encoding(raw)
    flat: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode(encoding).lower(), value.decode(encoding)
        flat[key] = f"{flat[key]}, {text}" if key in flat else text
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
