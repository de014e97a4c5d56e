"""The wire under `HttpCore`: aiohttp's connection pool, with failures reported as httpx exceptions.

`HttpCore` builds requests and reads answers the way httpx does (headers, JSON encoding, content
decoding, redirects of its own); this module only moves the bytes. Why not httpx's own client: per
request it re-parses the URL, runs a cookie jar over an `email.message` copy of every response, and its
connection pool (httpcore) re-examines every pooled connection, with a system call for each idle one
and a quadratic count of idle connections, on every request and every response. Measured with 32
connections to one host at 100 ms latency: 1.6-1.7 ms of CPU per request with httpx, 0.3 ms with aiohttp
(see docs/benchmark.md). That was most of the worker's CPU per job.

Failures come out as the httpx exceptions `HttpCore` already classifies (`httpx.ConnectTimeout`,
`httpx.ReadTimeout`, `httpx.ConnectError`, `httpx.RemoteProtocolError`, `httpx.ReadError`,
`httpx.DecodingError`), with httpcore's wording where it has one.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from functools import lru_cache

import aiohttp
import httpx
from aiohttp.compression_utils import HAS_BROTLI
from yarl import URL

KEEPALIVE_EXPIRY_SECONDS = 5.0
"""httpx's default keep-alive expiry."""
ACCEPT_ENCODING = "gzip, deflate, br" if HAS_BROTLI else "gzip, deflate"
"""What aiohttp can decode; httpx advertises what it can decode in the same way."""
# The caller sends every header it wants (httpx's defaults included); aiohttp adds only Host and,
# for a body, Content-Length.
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
_FAILURES = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


def translate(exc: BaseException) -> httpx.TransportError | httpx.DecodingError:
    """The httpx exception for an aiohttp failure."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(exc) or "timed out while connecting")
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return httpx.ReadTimeout(str(exc) or "timed out while reading")
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        return httpx.ConnectError(os_error.strerror if os_error and os_error.strerror else str(os_error or exc))
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError("Server disconnected without sending a response.")
    if isinstance(exc, aiohttp.ClientPayloadError):
        text = str(exc)
        if "decode" in text.lower() or "encoding" in text.lower():
            return httpx.DecodingError(text)
        return httpx.RemoteProtocolError(f"peer closed connection without sending complete message body ({text})")
    if isinstance(exc, aiohttp.ClientResponseError):  # an answer that is not valid HTTP
        return httpx.RemoteProtocolError(exc.message or str(exc))
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(str(exc))
    if isinstance(exc, ConnectionResetError):
        return httpx.ReadError("connection reset by peer")
    if isinstance(exc, OSError | aiohttp.ClientError):
        return httpx.ReadError(str(exc))
    return httpx.TransportError(f"{type(exc).__name__}: {exc}")


@lru_cache(maxsize=512)
def _url(url: str) -> URL:
    # Already a valid, encoded URL (httpx parsed it); a job's model URL repeats, so parse it once.
    return URL(url, encoded=True)


def header_encoding(raw: Iterable[tuple[bytes, bytes]]) -> str:
    """httpx's rule for a set of response headers: ASCII, else UTF-8, else ISO-8859-1."""
    for encoding in ("ascii", "utf-8"):
        try:
            for key, value in raw:
                key.decode(encoding)
                value.decode(encoding)
        except UnicodeDecodeError:
            continue
        return encoding
    return "iso-8859-1"


class Answer:
    """An aiohttp response whose body is read with `chunks()`; `close()` frees or discards the connection."""

    __slots__ = ("_response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def reason(self) -> str:
        return self._response.reason or ""

    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return self._response.raw_headers

    def header(self, name: str) -> str | None:
        return self._response.headers.get(name)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, decoded per Content-Encoding as httpx decodes it."""
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except _FAILURES as exc:
            raise translate(exc) from exc

    def close(self) -> None:
        if self._response.content.is_eof():
            self._response.release()  # read to its end: the connection goes back to the pool
        else:
            self._response.close()  # not read to its end: the connection cannot be reused


class AiohttpSession:
    """One aiohttp session for the worker, created on first use inside the running event loop."""

    def __init__(self, *, max_connections: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self._max_connections = max_connections
        self._ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def _get(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self._ssl_context is None:
                # httpx's CA bundle and its SSL_CERT_FILE / SSL_CERT_DIR handling.
                self._ssl_context = httpx.create_ssl_context()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    limit_per_host=0,
                    ssl=self._ssl_context,
                    keepalive_timeout=KEEPALIVE_EXPIRY_SECONDS,
                ),
                skip_auto_headers=_NO_AUTO_HEADERS,
                # Cookies are kept per worker, as httpx's client kept them.
                cookie_jar=aiohttp.CookieJar(),
                trust_env=False,  # a proxy in the environment makes HttpCore use httpx instead
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        connect_timeout: float,
        read_timeout: float,
    ) -> Answer:
        """Sends the request; the answer's body is still to be read. Raises httpx exceptions."""
        # As httpx.Timeout(read, connect=connect): waiting for a pooled connection may take `read`.
        timeout = aiohttp.ClientTimeout(
            total=None, connect=read_timeout + connect_timeout, sock_connect=connect_timeout, sock_read=read_timeout
        )
        try:
            response = await self._get().request(
                method,
                _url(url),
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=timeout,
            )
        except _FAILURES as exc:
            raise translate(exc) from exc
        return Answer(response)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
