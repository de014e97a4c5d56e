"""The wire under `HttpCore`: pooled HTTP/1.1 keep-alive connections on asyncio, parsed by httptools.

`HttpCore` builds requests and reads answers the way httpx does (headers, JSON encoding, redirects of its
own); this module only moves the bytes. It opens, pools and reuses connections, writes a request, parses
the answer with httptools (llhttp, the parser uvicorn runs on) and decodes its Content-Encoding.

Why not a general-purpose client: per request, httpx's client cost 1.6-1.7 ms of CPU here and aiohttp's
0.32-0.37 ms (cookie jars, tracing hooks, timeout contexts, multidicts, several tasks); this wire costs
about 0.08 ms, most of it the `send` system call (docs/benchmark.md, tuning log). That was most of what
the worker spent per job beyond what pyzeebe itself costs.

Every request is independent: no cookies are kept between jobs, as with Camunda's REST connector.
Failures come out as the httpx exceptions `HttpCore` already classifies (`httpx.ConnectTimeout`,
`httpx.ReadTimeout`, `httpx.ConnectError`, `httpx.RemoteProtocolError`, `httpx.ReadError`,
`httpx.DecodingError`, `httpx.LocalProtocolError`), with httpcore's wording where it has one.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import httptools
import httpx

KEEPALIVE_EXPIRY_SECONDS = 5.0
"""httpx's default keep-alive expiry: an idle connection older than this is closed, not reused."""
DNS_CACHE_SECONDS = 10.0
"""How long a host's resolved addresses are reused for new connections (see worker/destinations.py)."""
ACCEPT_ENCODING = "gzip, deflate"
"""What this wire decodes; httpx advertises the same when neither brotli nor zstandard is installed."""
_MAX_DECODED_PIECE = 1 << 20
"""A compressed chunk is expanded a MiB at a time, so the response cap stops a decompression bomb early."""
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ILLEGAL_IN_VALUE = re.compile(r"[\r\n\x00]")
_NO_BODY_STATUSES = frozenset({204, 304})

Address = tuple[socket.AddressFamily, str, int]
Origin = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request for a URL goes: the connection's origin, the Host header and the request target."""

    scheme: str
    host: str
    port: int
    host_header: str
    path: str

    @property
    def origin(self) -> Origin:
        return self.scheme, self.host, self.port


@lru_cache(maxsize=512)
def parse_url(url: str) -> Target:
    """The URL as httpx would send it; raises httpx.InvalidURL / httpx.UnsupportedProtocol as httpx would.
    A job's model URL repeats, so each is parsed once."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{parsed.scheme}://'.")
    if not parsed.host:
        raise httpx.UnsupportedProtocol("Request URL is missing an 'http://' or 'https://' protocol.")
    return Target(
        scheme=parsed.scheme,
        host=parsed.raw_host.decode("ascii"),
        port=parsed.port or (443 if parsed.scheme == "https" else 80),
        host_header=parsed.netloc.decode("ascii"),
        path=parsed.raw_path.decode("ascii"),
    )


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


def request_head(method: str, target: Target, headers: Mapping[str, str]) -> bytes:
    """The request line and headers; Host first, as httpx sends it, unless the caller gives one."""
    lines = [f"{method} {target.path} HTTP/1.1"]
    host_given = False
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise httpx.LocalProtocolError(f"Illegal header name {name!r}")
        if _ILLEGAL_IN_VALUE.search(value):
            # Never the value itself: it may be a token.
            raise httpx.LocalProtocolError(f"Illegal header value in header {name!r}: it contains a line break")
        host_given = host_given or name.lower() == "host"
        lines.append(f"{name}: {value}")
    if not host_given:
        lines.insert(1, f"Host: {target.host_header}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8")


# --- Content-Encoding ------------------------------------------------------------------------------


class _ZlibDecoder:
    """gzip, or deflate in its zlib wrapper or raw (servers send both; httpx accepts both)."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._first = True
        self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)

    def decode(self, data: bytes) -> Iterator[bytes]:
        try:
            if self._first and not self._gzip:
                self._first = False
                try:
                    yield from self._expand(data)
                    return
                except zlib.error:
                    self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            yield from self._expand(data)
        except zlib.error as exc:
            raise httpx.DecodingError(str(exc)) from None

    def flush(self) -> Iterator[bytes]:
        try:
            rest = self._inflate.flush()
        except zlib.error as exc:
            raise httpx.DecodingError(str(exc)) from None
        if rest:
            yield rest

    def _expand(self, data: bytes) -> Iterator[bytes]:
        piece = self._inflate.decompress(data, _MAX_DECODED_PIECE)
        while True:
            if piece:
                yield piece
            tail = self._inflate.unconsumed_tail
            if not tail:
                return
            piece = self._inflate.decompress(tail, _MAX_DECODED_PIECE)


_DECODERS = {"gzip": True, "x-gzip": True, "deflate": False}


class _Decoding:
    """The Content-Encoding steps undone in reverse order; encodings httpx does not know pass as they are."""

    def __init__(self, content_encoding: str) -> None:
        names = [name.strip().lower() for name in content_encoding.split(",")]
        self._steps = [_ZlibDecoder(_DECODERS[name]) for name in reversed(names) if name in _DECODERS]

    def decode(self, data: bytes) -> Iterator[bytes]:
        return self._through(iter([data]), 0)

    def flush(self) -> Iterator[bytes]:
        for index, step in enumerate(self._steps):
            yield from self._through(step.flush(), index + 1)

    def _through(self, pieces: Iterator[bytes], first_step: int) -> Iterator[bytes]:
        for step in self._steps[first_step:]:
            pieces = _decoded(step, pieces)
        return pieces


def _decoded(step: _ZlibDecoder, pieces: Iterator[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield from step.decode(piece)


# --- One exchange ----------------------------------------------------------------------------------


class Answer:
    """The answer to one request, its head already read; `chunks()` reads the body, `close()` hands the
    connection back to the pool (body read to its end) or closes it."""

    __slots__ = (
        "_body",
        "_complete",
        "_connection",
        "_error",
        "_head_read",
        "_keep_alive",
        "_method",
        "_pool",
        "_read_timeout",
        "_reason",
        "_released",
        "_waiter",
        "raw_headers",
        "status",
    )

    def __init__(self, connection: _Connection, pool: ConnectionPool, method: str, read_timeout: float) -> None:
        self._connection = connection
        self._pool = pool
        self._method = method
        self._read_timeout = read_timeout
        self._reason: list[bytes] = []
        self._body: deque[bytes] = deque()
        self._head_read = self._complete = self._keep_alive = self._released = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []

    @property
    def reason(self) -> str:
        return b"".join(self._reason).decode("latin-1")

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode("ascii")
        for key, value in self.raw_headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, decoded per Content-Encoding as httpx decodes it."""
        encoding = self.header("content-encoding")
        decoding = _Decoding(encoding) if encoding else None
        while True:
            while self._body:
                data = self._body.popleft()
                if decoding is None:
                    yield data
                else:
                    for piece in decoding.decode(data):
                        yield piece
            if self._error is not None:
                raise self._error
            if self._complete:
                break
            await self._next_event()
        if decoding is not None:
            for piece in decoding.flush():
                yield piece

    def close(self) -> None:
        if self._released:
            return
        self._released = True
        reusable = self._complete and self._keep_alive and not self._body and self._error is None
        self._pool.release(self._connection, reusable)

    async def read_head(self) -> None:
        while not self._head_read:
            if self._error is not None:
                raise self._error
            await self._next_event()

    async def _next_event(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(self._read_timeout):
                await self._waiter
        except TimeoutError:
            raise httpx.ReadTimeout("timed out while reading") from None
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # Fed by the connection's parser callbacks.

    def status_text(self, data: bytes) -> None:
        self._reason.append(data)

    def header_line(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))

    def head_done(self, status: int) -> bool:
        """False for an interim (1xx) answer, whose head is dropped while the real one follows."""
        if 100 <= status < 200:
            self._reason.clear()
            self.raw_headers.clear()
            return False
        self.status = status
        self._head_read = True
        if self._method == "HEAD":  # llhttp would wait for the body a HEAD answer announces but never sends
            self._complete = True
        self._wake()
        return True

    def body_data(self, data: bytes) -> None:
        self._body.append(data)
        self._wake()

    def message_done(self, keep_alive: bool) -> None:
        self._complete = True
        self._keep_alive = keep_alive
        self._wake()

    def ended(self, error: Exception) -> None:
        """The connection ended or broke before the answer was complete."""
        if self._complete:
            return
        if isinstance(error, ConnectionResetError):
            self._error = httpx.ReadError("connection reset by peer")
        elif isinstance(error, httpx.TransportError):
            self._error = error
        elif not self._head_read:
            self._error = httpx.RemoteProtocolError("Server disconnected without sending a response.")
        elif isinstance(error, _Closed) and self._body_runs_until_close():
            self._complete = True  # no length and not chunked: the body ends where the connection does
        elif isinstance(error, _Closed):
            self._error = httpx.RemoteProtocolError("peer closed connection without sending complete message body")
        else:
            self._error = httpx.ReadError(str(error) or type(error).__name__)
        self._wake()

    def _body_runs_until_close(self) -> bool:
        if self.status in _NO_BODY_STATUSES:
            return False
        for key, value in self.raw_headers:
            name = key.lower()
            if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
                return False
        return True


class _Closed(Exception):
    """The peer closed the connection cleanly."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; it carries one exchange at a time."""

    def __init__(self, origin: Origin, sock: socket.socket) -> None:
        self.origin = origin
        self._sock = sock
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._answer: Answer | None = None
        self._writable: asyncio.Future[None] | None = None

    def start(self, answer: Answer, data: bytes) -> None:
        assert self.transport is not None
        self._answer = answer
        self.transport.write(data)

    async def drained(self) -> None:
        """Waits while a large body is still queued for sending."""
        while self._writable is not None and not self.closed:
            await self._writable

    def finish(self) -> None:
        self._answer = None

    def still_open(self) -> bool:
        """Whether an idle connection can carry a request. Its close is seen only once the event loop reads
        the socket; a busy loop may not have yet, so the socket itself is asked (one system call, for the
        one connection about to be reused; httpx's pool asks every idle connection on every request)."""
        if self.closed:
            return False
        try:
            self._sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True  # nothing to read: open, and quiet as an idle connection should be
        except OSError:
            return False
        return False  # the peer closed it (b""), or sent bytes nobody asked for

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._answer is None:  # bytes nobody asked for: the connection's state is unknown
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the server switched protocols, which this client does not speak"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(str(exc) or "the answer is not valid HTTP"))

    def eof_received(self) -> bool:
        self.closed = True
        return False  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._answer is not None:
            self._answer.ended(exc or _Closed())
        self._resume()

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._resume()

    def _resume(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self._answer is not None:
            self._answer.ended(error)
        self.close()

    # httptools callbacks; bytes beyond the answer asked for make the connection unusable.

    def _current(self) -> Answer | None:
        answer = self._answer
        if answer is None or answer._complete:
            self.closed = True
            return None
        return answer

    def on_status(self, data: bytes) -> None:
        if answer := self._current():
            answer.status_text(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        if answer := self._current():
            answer.header_line(name, value)

    def on_headers_complete(self) -> None:
        if answer := self._current():
            answer.head_done(self._parser.get_status_code())

    def on_body(self, data: bytes) -> None:
        if answer := self._current():
            answer.body_data(data)

    def on_message_complete(self) -> None:
        answer = self._answer
        if answer is not None and answer._head_read and not answer._complete:
            answer.message_done(self._parser.should_keep_alive())


# --- The pool --------------------------------------------------------------------------------------


class ConnectionPool:
    """Keep-alive connections per origin, at most `max_connections` requests at once."""

    def __init__(self, *, max_connections: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._ssl_context = ssl_context
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._addresses: dict[tuple[str, int], tuple[float, list[Address]]] = {}

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
        """Sends the request and reads the answer's head; its body is still to be read. Raises httpx
        exceptions. As with httpx.Timeout(read, connect=connect), waiting for a free slot may take `read`."""
        target = parse_url(url)
        head = request_head(method, target, headers)
        await self._take_slot(read_timeout + connect_timeout)
        connection: _Connection | None = None
        try:
            connection = self._reuse(target.origin) or await self._connect(target, connect_timeout)
            answer = Answer(connection, self, method, read_timeout)
            connection.start(answer, head + body if body else head)
            await connection.drained()
            await answer.read_head()
        except BaseException:
            self.release(connection, reusable=False)
            raise
        return answer

    def release(self, connection: _Connection | None, reusable: bool) -> None:
        self._slots.release()
        if connection is None:
            return
        connection.finish()
        if not reusable or connection.closed:
            self._forget(connection)
            return
        connection.idle_since = time.monotonic()
        idle = self._idle.setdefault(connection.origin, deque())
        idle.append(connection)
        while idle and connection.idle_since - idle[0].idle_since > KEEPALIVE_EXPIRY_SECONDS:
            self._forget(idle.popleft())

    async def aclose(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()

    async def _take_slot(self, timeout: float) -> None:
        if not self._slots.locked():
            await self._slots.acquire()
            return
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.ConnectTimeout("timed out waiting for a free connection") from None

    def _reuse(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to have been closed
            if now - connection.idle_since <= KEEPALIVE_EXPIRY_SECONDS and connection.still_open():
                return connection
            self._forget(connection)
        return None

    def _forget(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    async def _connect(self, target: Target, timeout: float) -> _Connection:
        tls = self._tls() if target.scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                error: OSError | None = None
                for family, address, port in await self._resolve(target.host, target.port):
                    try:
                        connection = await _open(target, family, (address, port), tls)
                    except ssl.SSLError as exc:
                        raise httpx.ConnectError(str(exc)) from None
                    except OSError as exc:
                        error = exc
                        continue
                    self._open.add(connection)
                    return connection
        except TimeoutError:
            raise httpx.ConnectTimeout("timed out while connecting") from None
        except OSError as exc:  # the name did not resolve
            raise httpx.ConnectError(exc.strerror or str(exc)) from None
        raise httpx.ConnectError((error.strerror or str(error)) if error else f"no address for {target.host}")

    async def _resolve(self, host: str, port: int) -> Sequence[Address]:
        cached = self._addresses.get((host, port))
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses: list[Address] = [(info[0], str(info[4][0]), int(info[4][1])) for info in infos]
        if len(self._addresses) >= 1024:
            self._addresses.clear()
        self._addresses[(host, port)] = (now + DNS_CACHE_SECONDS, addresses)
        return addresses

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            # httpx's CA bundle and its SSL_CERT_FILE / SSL_CERT_DIR handling.
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context


async def _open(
    target: Target, family: socket.AddressFamily, address: tuple[str, int], tls: ssl.SSLContext | None
) -> _Connection:
    # The socket is made here, not by asyncio, so that `_Connection.still_open` can look at it.
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, address)
        _, connection = await loop.create_connection(
            lambda: _Connection(target.origin, sock),
            sock=sock,
            ssl=tls,
            server_hostname=target.host if tls else None,
        )
    except BaseException:
        sock.close()
        raise
    return connection
