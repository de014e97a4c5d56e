"""The worker's own HTTP/1.1 wire (worker/http_transport.py), case by case against a loopback server.

Each test starts a small `asyncio.start_server` that reads whole requests and answers with exact raw
bytes, so that keep-alive, framing, interim answers, encodings and failures are precise. What
tests/unit/test_http_wire.py already compares with httpx (JSON answers, gzip, error statuses, resets,
truncation, oversize, timeouts, refused connections, redirects) is not repeated here.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import socket
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

import httpx
import pytest

from worker.http_transport import Answer, ConnectionPool

TIMEOUT = 2.0
"""Connect and read timeout of an ordinary request: far above what loopback needs, far below a hang."""

Reply = Callable[[asyncio.StreamWriter], Awaitable[bool]]
"""Answers one request on a connection; returns whether the server goes on reading from that connection."""


def answer_bytes(body: bytes = b"ok", *headers: str, status: str = "200 OK") -> bytes:
    """A whole HTTP/1.1 answer, with a Content-Length unless a header already frames the body."""
    lines = [f"HTTP/1.1 {status}", *headers]
    if not any(line.lower().startswith(("content-length:", "transfer-encoding:")) for line in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def reply(*pieces: bytes, close: bool = False) -> Reply:
    """Sends the pieces one write (and drain) at a time; then closes the connection or reads the next request."""

    async def send(writer: asyncio.StreamWriter) -> bool:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
        if close:
            writer.close()
            await writer.wait_closed()
        return not close

    return send


def halves(data: bytes) -> tuple[bytes, bytes]:
    return data[: len(data) // 2], data[len(data) // 2 :]


@dataclass(frozen=True)
class Received:
    connection: int
    """1 for the first connection the server accepted, 2 for the second, ..."""
    head: bytes
    body: bytes


class RawServer:
    """A loopback HTTP server that answers the requests it reads with the given replies, in order; with no
    reply left it closes the connection."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = deque(replies)
        self.received: list[Received] = []
        self.descriptors: list[int] = []
        """The server side's socket of each accepted connection, in order."""
        self.port = 0
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    @property
    def connections(self) -> int:
        return len(self.descriptors)

    def connections_used(self) -> list[int]:
        """Which connection each request arrived on."""
        return [seen.connection for seen in self.received]

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in self._writers:
            writer.close()  # a handler waiting for a request sees the end of its connection and returns
        if self._handlers:
            _, stuck = await asyncio.wait(self._handlers, timeout=TIMEOUT)
            for handler in stuck:  # only when a test failed while a reply was still waiting
                handler.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._writers.append(writer)
        self.descriptors.append(writer.get_extra_info("socket").fileno())
        connection = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(_content_length(head))
                self.received.append(Received(connection, head, body))
                if not self.replies or not await self.replies.popleft()(writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return  # the client closed or reset the connection
        finally:
            writer.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


async def _pool_of(max_connections: int) -> AsyncIterator[ConnectionPool]:
    made = ConnectionPool(max_connections=max_connections)
    yield made
    await made.aclose()


@pytest.fixture
async def pool() -> AsyncIterator[ConnectionPool]:
    async for made in _pool_of(4):
        yield made


@pytest.fixture
async def pool_of_one() -> AsyncIterator[ConnectionPool]:
    async for made in _pool_of(1):
        yield made


async def send(
    pool: ConnectionPool,
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = TIMEOUT,
) -> Answer:
    return await pool.request(method, url, headers or {}, body, connect_timeout=timeout, read_timeout=timeout)


async def read_all(answer: Answer) -> bytes:
    """The whole decoded body; the answer is closed afterwards, as HttpCore closes it."""
    try:
        return b"".join([chunk async for chunk in answer.chunks()])
    finally:
        answer.close()


async def fetch(pool: ConnectionPool, url: str) -> tuple[int, bytes]:
    answer = await send(pool, url)
    return answer.status, await read_all(answer)


# --- Keep-alive ----------------------------------------------------------------------------------


async def test_sequential_requests_reuse_one_kept_alive_connection(pool: ConnectionPool) -> None:
    async with RawServer(reply(answer_bytes(b"first")), reply(answer_bytes(b"second"))) as server:
        assert await fetch(pool, server.url()) == (200, b"first")
        assert await fetch(pool, server.url()) == (200, b"second")

    assert server.connections == 1
    assert server.connections_used() == [1, 1]


async def test_an_answer_with_connection_close_is_not_reused(pool: ConnectionPool) -> None:
    # The server keeps the connection open: only the header tells the client not to reuse it.
    closing = answer_bytes(b"bye", "Connection: close")
    async with RawServer(reply(closing), reply(answer_bytes(b"again"))) as server:
        assert await fetch(pool, server.url()) == (200, b"bye")
        assert await fetch(pool, server.url()) == (200, b"again")

    assert server.connections_used() == [1, 2]


async def test_an_idle_connection_the_server_closed_is_replaced_without_error(pool: ConnectionPool) -> None:
    idle, server_closed = asyncio.Event(), asyncio.Event()

    async def answer_then_close_once_idle(writer: asyncio.StreamWriter) -> bool:
        writer.write(answer_bytes(b"first"))  # keep-alive, as far as the client can tell
        await writer.drain()
        await idle.wait()
        writer.close()
        await writer.wait_closed()
        server_closed.set()
        return False

    async with RawServer(answer_then_close_once_idle, reply(answer_bytes(b"second"))) as server:
        assert await fetch(pool, server.url()) == (200, b"first")
        idle.set()  # the answer is closed: its connection waits in the pool
        await asyncio.wait_for(server_closed.wait(), TIMEOUT)
        assert await fetch(pool, server.url()) == (200, b"second")

    assert server.connections_used() == [1, 2]


async def test_an_idle_connection_closed_while_the_event_loop_was_busy_is_replaced_without_error(
    pool: ConnectionPool,
) -> None:
    async with RawServer(reply(answer_bytes(b"first")), reply(answer_bytes(b"second"))) as server:
        assert await fetch(pool, server.url()) == (200, b"first")
        # The server's side of the idle connection is shut down at once, without the event loop running in
        # between, as when the worker is busy on the CPU while the server drops an idle connection.
        with socket.socket(fileno=os.dup(server.descriptors[0])) as server_side:
            server_side.shutdown(socket.SHUT_RDWR)
        assert await fetch(pool, server.url()) == (200, b"second")

    assert server.connections_used() == [1, 2]


@pytest.mark.parametrize("whole_body_arrived", [False, True], ids=["body-still-coming", "body-unread"])
async def test_an_answer_closed_before_its_body_was_read_to_the_end_is_not_reused(
    pool: ConnectionPool, whole_body_arrived: bool
) -> None:
    whole = answer_bytes(b"0123456789")
    async with RawServer(reply(whole if whole_body_arrived else whole[:-5]), reply(answer_bytes(b"fresh"))) as server:
        answer = await send(pool, server.url())
        assert answer.status == 200
        answer.close()
        assert await fetch(pool, server.url()) == (200, b"fresh")

    assert server.connections_used() == [1, 2]


async def test_with_one_connection_a_second_request_waits_until_the_first_answer_is_closed(
    pool_of_one: ConnectionPool,
) -> None:
    async with RawServer(reply(answer_bytes(b"first")), reply(answer_bytes(b"second"))) as server:
        first = await send(pool_of_one, server.url())
        assert b"".join([chunk async for chunk in first.chunks()]) == b"first"
        second = asyncio.create_task(fetch(pool_of_one, server.url()))
        # Not a synchronisation: without the limit, loopback answers the second request well within this.
        done, _ = await asyncio.wait({second}, timeout=0.3)
        assert not done and server.connections_used() == [1]
        first.close()
        assert await asyncio.wait_for(second, TIMEOUT) == (200, b"second")

    assert server.connections_used() == [1, 1]


async def test_with_one_connection_held_a_second_request_gives_up_after_read_and_connect_timeouts(
    pool_of_one: ConnectionPool,
) -> None:
    async with RawServer(reply(answer_bytes(b"held"))) as server:
        held = await send(pool_of_one, server.url())
        started = time.monotonic()
        with pytest.raises(httpx.ConnectTimeout):
            # 0.2 s to read plus 0.2 s to connect; wait_for fails the test rather than hang it if there were no end
            await asyncio.wait_for(send(pool_of_one, server.url(), timeout=0.2), TIMEOUT)
        waited = time.monotonic() - started
        held.close()

    assert 0.35 <= waited < 1.5
    assert server.connections_used() == [1]


# --- Framing and answers -------------------------------------------------------------------------


async def test_a_chunked_answer_is_read_whole_and_its_connection_reused(pool: ConnectionPool) -> None:
    chunked = reply(
        answer_bytes(b"", "Transfer-Encoding: chunked"),
        b"5\r\nhello\r\n",
        b"2\r\n, \r\n",
        b"6\r\nchunks\r\n0\r\n\r\n",
    )
    async with RawServer(chunked, reply(answer_bytes(b"next"))) as server:
        assert await fetch(pool, server.url()) == (200, b"hello, chunks")
        assert await fetch(pool, server.url()) == (200, b"next")

    assert server.connections_used() == [1, 1]


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
async def test_a_body_without_length_or_chunking_ends_where_the_connection_does(
    pool: ConnectionPool, version: str
) -> None:
    head = f"{version} 200 OK\r\nContent-Type: text/plain\r\n\r\n".encode()
    async with RawServer(reply(head, b"until ", b"the end", close=True), reply(answer_bytes(b"next"))) as server:
        assert await fetch(pool, server.url()) == (200, b"until the end")
        assert await fetch(pool, server.url()) == (200, b"next")

    assert server.connections_used() == [1, 2]


async def test_an_interim_100_continue_is_skipped_for_the_real_answer(pool: ConnectionPool) -> None:
    interim = b"HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n"
    real = answer_bytes(b"made", "X-Real: yes", status="201 Created")
    async with RawServer(reply(interim, real)) as server:
        answer = await send(pool, server.url(), method="POST", body=b"payload")
        assert (answer.status, answer.reason) == (201, "Created")
        assert answer.header("x-interim") is None
        assert answer.header("x-real") == "yes"
        assert await read_all(answer) == b"made"


async def test_a_head_answer_ends_at_its_head_although_it_announces_a_body(pool: ConnectionPool) -> None:
    async with RawServer(reply(answer_bytes(b"", "Content-Length: 1234"))) as server:
        answer = await send(pool, server.url(), method="HEAD")
        assert (answer.status, answer.header("content-length")) == (200, "1234")
        assert await read_all(answer) == b""


async def test_the_server_receives_the_request_line_host_first_the_headers_and_the_exact_body(
    pool: ConnectionPool,
) -> None:
    body = b'{"inputs": "h\xc3\xa9llo\\r\\n"}\r\n'
    headers = {"Authorization": "Bearer hf_token", "Content-Type": "application/json", "Content-Length": f"{len(body)}"}
    async with RawServer(reply(answer_bytes())) as server:
        answer = await send(pool, server.url("/path?q=1"), method="POST", headers=headers, body=body)
        assert await read_all(answer) == b"ok"

    expected_head = (
        f"POST /path?q=1 HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        "Authorization: Bearer hf_token\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    ).encode()
    assert server.received == [Received(1, expected_head, body)]


# --- Content-Encoding ----------------------------------------------------------------------------

PLAIN = b'{"generated_text": "deflated"}' * 50


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize("compress", [zlib.compress, raw_deflate], ids=["zlib-wrapped", "raw"])
async def test_a_deflate_answer_is_decoded(pool: ConnectionPool, compress: Callable[[bytes], bytes]) -> None:
    encoded = compress(PLAIN)
    head = answer_bytes(b"", "Content-Encoding: deflate", f"Content-Length: {len(encoded)}")
    async with RawServer(reply(head, *halves(encoded))) as server:
        assert await fetch(pool, server.url()) == (200, PLAIN)


def _wrong_checksum(data: bytes) -> bytes:
    packed = gzip.compress(data)
    return packed[:-8] + bytes(byte ^ 0xFF for byte in packed[-8:-4]) + packed[-4:]


@pytest.mark.parametrize(
    "body", [b"this is not gzip at all", _wrong_checksum(PLAIN)], ids=["not-gzip", "wrong-checksum"]
)
async def test_a_corrupt_gzip_answer_is_a_decoding_error(pool: ConnectionPool, body: bytes) -> None:
    async with RawServer(reply(answer_bytes(body, "Content-Encoding: gzip"))) as server:
        answer = await send(pool, server.url())
        with pytest.raises(httpx.DecodingError):
            await read_all(answer)


# --- Failures ------------------------------------------------------------------------------------


async def test_a_line_break_in_a_header_value_is_refused_before_sending_and_the_value_is_not_told(
    pool: ConnectionPool,
) -> None:
    secret = "hf_secretToken\r\nX-Injected: yes"
    async with RawServer(reply(answer_bytes(b"clean"))) as server:
        with pytest.raises(httpx.LocalProtocolError) as refused:
            await send(pool, server.url(), headers={"Authorization": secret})
        assert await fetch(pool, server.url()) == (200, b"clean")  # the pool is still usable

    assert "hf_secretToken" not in str(refused.value) and "X-Injected" not in str(refused.value)
    assert len(server.received) == 1 and b"hf_secretToken" not in server.received[0].head


@pytest.mark.parametrize(
    "garbage", [b"SSH-2.0-OpenSSH_9.6\r\n", b"HTTP/1.1 2xx OK\r\n\r\n"], ids=["not-http", "bad-status-line"]
)
async def test_an_answer_that_is_not_http_is_a_remote_protocol_error(pool: ConnectionPool, garbage: bytes) -> None:
    # The server keeps the connection open: only parsing can end the wait before the read timeout.
    async with RawServer(reply(garbage)) as server:
        with pytest.raises(httpx.RemoteProtocolError) as failed:
            await send(pool, server.url())

    assert "Server disconnected" not in str(failed.value)


async def test_a_server_that_closes_without_answering_is_a_remote_protocol_error(pool: ConnectionPool) -> None:
    async with RawServer(reply(close=True)) as server:
        with pytest.raises(httpx.RemoteProtocolError, match=r"^Server disconnected without sending a response\.$"):
            await send(pool, server.url())

    assert len(server.received) == 1
