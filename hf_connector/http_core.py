"""A small REST-connector-style HTTP core on aiohttp. It knows nothing of Zeebe or of Hugging Face.

A request goes out through one pooled aiohttp session, the same in production and in tests; the answer
comes back as an `HttpResult` (`{status, headers, body}` with lower-case, flattened headers). The body is
parsed JSON when it is JSON, text when it is text, and base64 with its content type when it is binary, so
an image or an audio clip never crashes a decoder. Every way a call can go wrong is one `HttpError`
subclass.

aiohttp rather than httpx: per request at 64 in flight, httpx's own transport costs twenty times aiohttp's
CPU and httpx on aiohttp's wire two to three times (bench/http_client_cpu.py), and aiohttp's resolver
hook lets the destination guard check the address that is actually dialled.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import functools
import json
import os
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.http_exceptions import LineTooLong
from multidict import CIMultiDict
from yarl import URL

from hf_connector.destinations import BlockedDestinationError, DestinationGuard, GuardedResolver
from hf_connector.http_decoding import ACCEPT_ENCODING, Decoding, DecodingError
from hf_connector.http_proxy import Proxy, ProxyRoutes, proxy_routes

_TEXT_TYPES = ("text/", "application/xml", "application/x-www-form-urlencoded", "application/javascript")
_MAX_REDIRECTS = 5
MAX_HEAD_BYTES = 64 * 1024
"""The status line and headers of an answer together; more is refused (aiohttp reads at most 128 lines)."""
KEEPALIVE_SECONDS = 15.0
"""An idle connection is closed after this long; aiohttp sweeps the pool for them."""
HAPPY_EYEBALLS_DELAY = 0.25
"""RFC 8305's delay before the next address is tried alongside one that has not answered yet."""
_ILLEGAL_IN_VALUE = re.compile(r"[\r\n\x00]")
_CROSS_ORIGIN_DROPPED = ("authorization", "cookie", "proxy-authorization")
_BODY_HEADERS = ("content-type", "content-length", "content-encoding", "transfer-encoding")


def _user_agent() -> str:
    try:
        return f"hf-camunda-connector/{version('hf-camunda-connector')}"
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "hf-camunda-connector"


USER_AGENT = _user_agent()


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


class ResponseHeadTooLargeError(HttpError):
    def __init__(self) -> None:
        super().__init__(f"the response's status line and headers are larger than {MAX_HEAD_BYTES // 1024} KiB")


class InvalidResponseError(HttpError):
    """The server said JSON but sent something that is not."""


class InvalidRequestError(HttpError):
    """The request cannot be sent as it is (a header value with a line break, a URL that is not http(s))."""


class DestinationNotAllowedError(HttpError):
    """The outbound rules forbid the host."""


class TooManyRedirectsError(HttpError):
    def __init__(self, last_url: str) -> None:
        super().__init__(f"more than {_MAX_REDIRECTS} redirects; the last pointed to {last_url}")


@dataclass(slots=True)
class _Answer:
    status: int
    reason: str
    headers: dict[str, str]
    body: Any


@dataclass(slots=True)
class _Hop:
    """What one request of a redirect chain sends."""

    url: URL
    method: str
    headers: CIMultiDict[str]
    body: bytes | None


class HttpCore:
    """Sends `HttpRequest`s over one pooled aiohttp session (a second one for a SOCKS proxy). No cookie
    outlives its job; redirects are followed here, so each hop passes the guard."""

    def __init__(
        self,
        *,
        max_response_bytes: int,
        guard: DestinationGuard | None = None,
        follow_redirects: bool = False,
        max_connections: int = 100,
        ca_bundle: Path | None = None,
        environ: Mapping[str, str] | None = None,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.max_response_bytes = max_response_bytes
        self.guard = guard or DestinationGuard()
        self.follow_redirects = follow_redirects
        self.max_connections = max_connections
        self._proxies: ProxyRoutes = proxy_routes(os.environ if environ is None else environ)
        self._ssl = tls_context(ca_bundle)
        self._resolver = resolver
        # Waiting for a free connection is its own phase, so it is told apart from a slow connect.
        self._slots = asyncio.Semaphore(max_connections)
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

    async def send(self, request: HttpRequest) -> HttpResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(request.total_timeout):
                answer = await self._send_following_redirects(request)
        except TimeoutError:
            raise HttpTimeoutError("complete response", request.total_timeout) from None
        return HttpResult(answer.status, answer.reason, answer.headers, answer.body, time.perf_counter() - started)

    async def _send_following_redirects(self, request: HttpRequest) -> _Answer:
        hop = _first_hop(request)
        for _ in range(_MAX_REDIRECTS + 1):
            self._check_destination(hop.url)
            answer = await self._send_once(request, hop)
            location = answer.headers.get("location")
            if not (self.follow_redirects and 300 <= answer.status <= 399 and location):
                return answer
            hop = _next_hop(hop, answer.status, location)
        raise TooManyRedirectsError(str(hop.url))

    def _check_destination(self, url: URL) -> None:
        try:
            self.guard.check_host(url.raw_host or "")
        except BlockedDestinationError as exc:
            raise DestinationNotAllowedError(str(exc)) from None

    async def _send_once(self, request: HttpRequest, hop: _Hop) -> _Answer:
        proxy = self._proxies.for_url(hop.url.scheme, hop.url.host or "")
        session = self._session(socks=proxy is not None and proxy.is_socks)
        timeout = _client_timeout(request.connect_timeout, request.read_timeout)
        await self._take_slot(request.read_timeout)
        try:
            async with session.request(
                hop.method,
                hop.url,
                headers=hop.headers,
                data=hop.body,
                timeout=timeout,
                proxy=_http_proxy_url(proxy),
                allow_redirects=False,
            ) as response:
                headers = _flatten(response)
                raw = await self._read_body(response, headers)
                return _Answer(
                    response.status, response.reason or "", headers, decode_body(raw, headers.get("content-type", ""))
                )
        except BlockedDestinationError as exc:  # the resolver's verdict on the address about to be dialled
            raise DestinationNotAllowedError(str(exc)) from None
        except (aiohttp.ClientError, DecodingError, ValueError, OSError) as exc:
            raise _classified(exc, request) from None
        except Exception as exc:
            if type(exc).__module__.startswith("aiohttp_socks"):  # its errors derive from Exception alone
                raise HttpConnectionError(f"the SOCKS proxy failed: {exc}") from None
            raise
        finally:
            self._slots.release()

    async def _take_slot(self, timeout: float) -> None:
        if not self._slots.locked():
            # A free slot is taken without waiting: no deadline to arm and cancel for nearly every call.
            await self._slots.acquire()
            return
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise HttpTimeoutError(f"free connection (all {self.max_connections} busy)", timeout) from None

    async def _read_body(self, response: aiohttp.ClientResponse, headers: dict[str, str]) -> bytes:
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_response_bytes:
            raise ResponseTooLargeError(self.max_response_bytes)
        decoding = Decoding(headers["content-encoding"]) if "content-encoding" in headers else None
        parts: list[bytes] = []
        size = 0

        def keep(piece: bytes) -> None:
            nonlocal size
            size += len(piece)
            if size > self.max_response_bytes:
                raise ResponseTooLargeError(self.max_response_bytes)
            parts.append(piece)

        async for chunk in response.content.iter_any():
            for piece in decoding.decode(chunk) if decoding else (chunk,):
                keep(piece)
        for piece in decoding.flush() if decoding else ():
            keep(piece)
        return b"".join(parts)

    def _session(self, *, socks: bool) -> aiohttp.ClientSession:
        session = self._sessions.get(socks)
        if session is None:
            session = self._sessions[socks] = aiohttp.ClientSession(
                connector=self._connector(self._proxies.socks if socks else None),
                cookie_jar=aiohttp.DummyCookieJar(),  # no cookie outlives its job
                headers={"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING},
                auto_decompress=False,  # decoded a MiB at a time in _read_body
                trust_env=False,  # proxies are chosen per request from ProxyRoutes
            )
        return session

    def _connector(self, socks: Proxy | None) -> aiohttp.TCPConnector:
        options: dict[str, Any] = {
            "limit": self.max_connections,
            "keepalive_timeout": KEEPALIVE_SECONDS,
            "ssl": self._ssl,
            "happy_eyeballs_delay": HAPPY_EYEBALLS_DELAY,
        }
        if socks is not None:
            from aiohttp_socks import ProxyConnector  # the optional extra, checked at start by proxy_routes

            # The proxy resolves the name (rdns): the name rules apply here, the address rules are the proxy's.
            return ProxyConnector.from_url(socks.url, rdns=True, **options)
        # No DNS cache: each new connection dials an address the guard has just seen.
        resolver = GuardedResolver(self.guard, self._resolver, unchecked=self._proxies.hosts)
        return aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, **options)


def tls_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """HF_CONNECTOR_CA_BUNDLE when set; else SSL_CERT_FILE / SSL_CERT_DIR (OpenSSL reads them) or the
    system's store; certifi's bundle when the system has none."""
    if ca_bundle is not None:
        return ssl.create_default_context(cafile=str(ca_bundle))
    context = ssl.create_default_context()
    if not context.get_ca_certs() and not (os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR")):
        try:
            import certifi
        except ImportError:
            return context
        context.load_verify_locations(cafile=certifi.where())
    return context


def _first_hop(request: HttpRequest) -> _Hop:
    try:
        url = URL(request.url, encoded=False)
    except (ValueError, TypeError) as exc:
        raise InvalidRequestError(f"'{request.url}' is not a valid URL ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidRequestError(f"'{request.url}' is not an http:// or https:// URL with a host")
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers.items():
        if _ILLEGAL_IN_VALUE.search(value):
            # Never the value itself: it may be a token.
            raise InvalidRequestError(f"the value of header '{name}' contains a line break")
        headers[name] = value
    body = request.content
    if body is None and request.json_body is not None:
        body = json.dumps(request.json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        headers.setdefault("Content-Type", "application/json")
    return _Hop(url, request.method.upper(), headers, body)


def _next_hop(hop: _Hop, status: int, location: str) -> _Hop:
    """Where a redirect leads, as browsers and httpx follow it: 303 (and a POST after 301/302) becomes a GET
    without a body; credentials and cookies stay with the origin they were meant for."""
    url = hop.url.join(URL(location))
    headers = hop.headers.copy()
    method, body = hop.method, hop.body
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, body = "GET", None
        for name in _BODY_HEADERS:
            headers.popall(name, None)
    if url.origin() != hop.url.origin():
        for name in _CROSS_ORIGIN_DROPPED:
            headers.popall(name, None)  # CIMultiDict: whatever case the caller wrote it in
    return _Hop(url, method, headers, body)


@functools.cache
def _client_timeout(connect: float, read: float) -> aiohttp.ClientTimeout:
    """aiohttp's per-socket deadlines; a handful of distinct pairs in a worker's life, each built once."""
    return aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)


def _http_proxy_url(proxy: Proxy | None) -> str | None:
    return proxy.url if proxy is not None and not proxy.is_socks else None


def _flatten(response: aiohttp.ClientResponse) -> dict[str, str]:
    """Lower-case names, repeated headers joined; refuses a head over MAX_HEAD_BYTES."""
    size = len(response.reason or "") + 16
    flat: dict[str, str] = {}
    for name, value in response.raw_headers:
        size += len(name) + len(value) + 4
        key, text = name.decode("latin-1").lower(), value.decode("utf-8", errors="replace")
        flat[key] = f"{flat[key]}, {text}" if key in flat else text
    if size > MAX_HEAD_BYTES:
        raise ResponseHeadTooLargeError()
    return flat


def _classified(exc: Exception, request: HttpRequest) -> HttpError:
    """aiohttp's exception as one of ours, with words a modeller can act on."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return HttpTimeoutError("connection", request.connect_timeout)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return HttpTimeoutError("response", request.read_timeout)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return HttpConnectionError(
            f"could not connect to {exc.host}:{exc.port} ({exc.os_error.strerror or exc.os_error})"
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return HttpConnectionError("the server closed the connection before the response was complete")
    if isinstance(exc, aiohttp.ClientOSError):
        return HttpConnectionError(
            f"the connection broke while reading the response ({exc.strerror or 'reset by peer'})"
        )
    if isinstance(exc, aiohttp.ClientResponseError) and _head_too_large(exc):
        return ResponseHeadTooLargeError()
    if isinstance(exc, aiohttp.ClientResponseError):
        return HttpConnectionError(f"the answer is not valid HTTP ({exc.message})")
    if isinstance(exc, DecodingError):
        return HttpConnectionError(f"the body does not decode as its Content-Encoding says ({exc})")
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError | ValueError):
        return InvalidRequestError(f"the request cannot be sent: {exc}")
    return HttpConnectionError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def _head_too_large(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, LineTooLong) or "Too many headers" in str(cause):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


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
