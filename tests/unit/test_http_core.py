"""The HTTP core: `{status, headers, body}` from any answer, and one clear error for every way a call fails.

Every case goes through the production client against a loopback server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.support.loopback_http import CLOSE, LoopbackServer, Received, ThenClose, answer, httpx_server
from worker.destinations import DestinationGuard
from worker.http_core import (
    USER_AGENT,
    HttpConnectionError,
    HttpCore,
    HttpRequest,
    HttpTimeoutError,
    InvalidRequestError,
    InvalidResponseError,
    ResponseHeadTooLargeError,
    ResponseTooLargeError,
    decode_body,
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
PATH = "/hf-inference/models/org/model"
TIMEOUT = 5.0
"""Connect and read timeout of an ordinary request: far above what loopback needs, far below a hang."""

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
async def core() -> AsyncIterator[HttpCore]:
    made = HttpCore(max_response_bytes=1024 * 1024, environ={})
    yield made
    await made.aclose()


@pytest.fixture
async def call(core: HttpCore) -> AsyncIterator[Callable[..., Awaitable[tuple[Any, list[httpx.Request]]]]]:
    """Sends one request to a loopback server answering with `handler`: (result, requests the server saw)."""

    async def send(handler: Handler, **request: Any) -> tuple[Any, list[httpx.Request]]:
        seen: list[httpx.Request] = []

        def recording(incoming: httpx.Request) -> httpx.Response:
            seen.append(incoming)
            return handler(incoming)

        async with httpx_server(recording) as server:
            request.setdefault("connect_timeout", TIMEOUT)
            request.setdefault("read_timeout", TIMEOUT)
            return await core.send(HttpRequest(server.url(PATH), **request)), seen

    yield send


def raw(*replies: bytes) -> Callable[[Received], Awaitable[bytes]]:
    """A responder that gives the replies in order, then closes connections."""
    queue = list(replies)

    async def respond(received: Received) -> bytes:
        return queue.pop(0) if queue else CLOSE

    return respond


# --- answers ----------------------------------------------------------------------------------------


async def test_a_json_answer_is_parsed_with_lower_case_headers(call: Any) -> None:
    result, _ = await call(
        lambda r: httpx.Response(200, json=[{"summary_text": "short"}], headers={"X-Request-Id": "req-1"}),
        json_body={"inputs": "long"},
    )
    assert result.status == 200
    assert result.reason == "OK"
    assert result.body == [{"summary_text": "short"}]
    assert result.headers["x-request-id"] == "req-1"
    assert result.elapsed_seconds >= 0
    assert result.as_variable() == {"status": 200, "headers": result.headers, "body": result.body}


async def test_the_request_carries_method_headers_json_body_and_our_user_agent(call: Any) -> None:
    result, seen = await call(
        lambda r: httpx.Response(204),
        headers={"authorization": "Bearer t", "x-use-cache": "false"},
        json_body={"inputs": "é"},
    )
    assert result.body is None
    assert seen[0].method == "POST"
    assert seen[0].headers["authorization"] == "Bearer t"
    assert seen[0].headers["x-use-cache"] == "false"
    assert seen[0].headers["content-type"] == "application/json"
    assert json.loads(seen[0].content) == {"inputs": "é"}
    assert seen[0].headers["user-agent"] == USER_AGENT
    assert USER_AGENT.startswith("hf-camunda-connector/")
    assert seen[0].headers["accept-encoding"] == "gzip, deflate"  # only what the worker decodes


async def test_raw_content_is_sent_as_is(call: Any) -> None:
    _, seen = await call(
        lambda r: httpx.Response(200, json={}), headers={"content-type": "image/png"}, content=PNG, json_body={}
    )
    assert seen[0].content == PNG
    assert seen[0].headers["content-type"] == "image/png"


async def test_a_png_answer_becomes_base64_with_its_content_type(call: Any) -> None:
    result, _ = await call(lambda r: httpx.Response(200, content=PNG, headers={"content-type": "image/png"}))
    assert result.body == {
        "contentType": "image/png",
        "encoding": "base64",
        "size": len(PNG),
        "data": base64.b64encode(PNG).decode(),
    }


async def test_repeated_headers_are_joined(call: Any) -> None:
    result, _ = await call(lambda r: httpx.Response(200, headers=[("Vary", "Accept"), ("vary", "Origin")], json={}))
    assert result.headers["vary"] == "Accept, Origin"


async def test_a_cookie_set_by_one_call_is_not_sent_with_the_next(core: HttpCore) -> None:
    cookie = answer(b"{}", "Content-Type: application/json", "Set-Cookie: session=job-one; Path=/")
    async with LoopbackServer(raw(cookie, cookie)) as server:
        await core.send(HttpRequest(server.url()))
        await core.send(HttpRequest(server.url()))
    assert [seen.headers.get("cookie") for seen in server.received] == [None, None]


async def test_sequential_calls_reuse_one_kept_alive_connection(core: HttpCore) -> None:
    async with LoopbackServer(raw(answer(b"first"), answer(b"second"))) as server:
        assert (await core.send(HttpRequest(server.url()))).body == "first"
        assert (await core.send(HttpRequest(server.url()))).body == "second"
    assert [seen.connection for seen in server.received] == [1, 1]


@pytest.mark.parametrize(
    ("raw_body", "content_type", "body"),
    [
        (b'{"a": 1}', "application/json", {"a": 1}),
        (b'{"a": 1}', "application/json; charset=utf-8", {"a": 1}),
        (b'{"type": "about:blank"}', "application/problem+json", {"type": "about:blank"}),
        (b"plain words", "text/plain", "plain words"),
        (b'{"looks": "json"}', "text/plain", '{"looks": "json"}'),
        (b"<xml/>", "application/xml", "<xml/>"),
        (b"[1, 2]", "", [1, 2]),
        (b"just text", "", "just text"),
        ("caf\u00e9".encode("latin-1"), "text/plain; charset=ISO-8859-1", "caf\u00e9"),
        (b"", "application/json", None),
    ],
)
def test_bodies_are_decoded_by_their_content_type(raw_body: bytes, content_type: str, body: Any) -> None:
    assert decode_body(raw_body, content_type) == body


def test_an_undeclared_binary_body_is_base64_octet_stream() -> None:
    body = decode_body(b"\x00\x01\x02\xff", "")
    assert body["contentType"] == "application/octet-stream"
    assert base64.b64decode(body["data"]) == b"\x00\x01\x02\xff"


def test_audio_is_binary() -> None:
    body = decode_body(b"fLaC\x00\x00\x00\x22", "audio/flac")
    assert body["contentType"] == "audio/flac"
    assert body["size"] == 8


async def test_a_body_that_claims_json_but_is_not_is_an_invalid_response(call: Any) -> None:
    with pytest.raises(InvalidResponseError) as caught:
        await call(
            lambda r: httpx.Response(502, content=b"<html>502</html>", headers={"content-type": "application/json"})
        )
    assert "application/json" in str(caught.value)


async def test_an_unknown_charset_does_not_crash_the_call(call: Any) -> None:
    result, _ = await call(
        lambda r: httpx.Response(200, content=b"hello", headers={"content-type": "text/plain; charset=klingon"})
    )
    assert result.body == "hello"


# --- encodings and size -----------------------------------------------------------------------------

PLAIN = b'{"generated_text": "deflated"}' * 50


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", _raw_deflate)],
    ids=["gzip", "deflate-zlib", "deflate-raw"],
)
async def test_compressed_answers_are_decoded(
    core: HttpCore, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    reply = answer(compress(PLAIN), f"Content-Encoding: {encoding}", "Content-Type: text/plain")
    async with LoopbackServer(raw(reply)) as server:
        assert (await core.send(HttpRequest(server.url()))).body == PLAIN.decode()


async def test_a_corrupt_gzip_answer_is_a_connection_error(core: HttpCore) -> None:
    async with LoopbackServer(raw(answer(b"this is not gzip", "Content-Encoding: gzip"))) as server:
        with pytest.raises(HttpConnectionError, match="does not decode"):
            await core.send(HttpRequest(server.url()))


async def test_a_decompression_bomb_stops_at_the_size_cap() -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)  # 64 MiB from about 64 KiB
    assert len(bomb) < 200 * 1024
    core = HttpCore(max_response_bytes=2 * 1024 * 1024, environ={})
    try:
        async with LoopbackServer(raw(answer(bomb, "Content-Encoding: gzip"))) as server:
            with pytest.raises(ResponseTooLargeError):
                await core.send(HttpRequest(server.url()))
    finally:
        await core.aclose()


async def test_a_declared_oversized_body_is_refused(call: Any, core: HttpCore) -> None:
    core.max_response_bytes = 1024
    with pytest.raises(ResponseTooLargeError) as caught:
        await call(lambda r: httpx.Response(200, content=b"x" * 5000, headers={"content-type": "text/plain"}))
    assert caught.value.limit == 1024
    assert "1024" in str(caught.value)


async def test_a_streamed_oversized_body_without_length_is_refused(core: HttpCore) -> None:
    core.max_response_bytes = 2048
    chunk = b"200\r\n" + b"y" * 512 + b"\r\n"
    chunked = answer(b"", "Transfer-Encoding: chunked", "Content-Type: text/plain") + chunk * 10 + b"0\r\n\r\n"
    async with LoopbackServer(raw(chunked)) as server:
        with pytest.raises(ResponseTooLargeError):
            await core.send(HttpRequest(server.url()))


async def test_a_body_at_the_limit_is_fine(call: Any, core: HttpCore) -> None:
    core.max_response_bytes = 1024
    result, _ = await call(lambda r: httpx.Response(200, content=b"z" * 1024, headers={"content-type": "text/plain"}))
    assert result.body == "z" * 1024


# --- failures ---------------------------------------------------------------------------------------


async def test_a_server_that_never_answers_is_a_response_timeout(core: HttpCore) -> None:
    async def never(received: Received) -> bytes:
        await asyncio.Event().wait()
        return CLOSE

    async with LoopbackServer(never) as server:
        with pytest.raises(HttpTimeoutError) as caught:
            await core.send(HttpRequest(server.url(), json_body={}, connect_timeout=TIMEOUT, read_timeout=0.05))
    assert caught.value.phase == "response"
    assert caught.value.seconds == 0.05
    assert "0.05 s" in str(caught.value)


async def test_a_body_that_trickles_forever_ends_with_the_total_timeout(core: HttpCore) -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer(b"", "Transfer-Encoding: chunked", "Content-Type: text/plain"))
        with contextlib.suppress(ConnectionError):
            while True:  # a byte well within each read timeout: only the total timeout can end this
                writer.write(b"1\r\n.\r\n")
                await writer.drain()
                await asyncio.sleep(0.005)

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    try:
        with pytest.raises(HttpTimeoutError) as caught:
            url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
            await core.send(HttpRequest(url, connect_timeout=0.1, read_timeout=0.1))
    finally:
        server.close()
        await server.wait_closed()
    assert caught.value.phase == "complete response"


async def test_waiting_for_a_free_connection_is_reported_as_such() -> None:
    core = HttpCore(max_response_bytes=1024, max_connections=1, environ={})
    release = asyncio.Event()

    async def held(received: Received) -> bytes:
        await release.wait()
        return answer(b"late")

    try:
        async with LoopbackServer(held) as server:
            first = asyncio.create_task(core.send(HttpRequest(server.url(), read_timeout=TIMEOUT)))
            await server.requests_seen(1)
            with pytest.raises(HttpTimeoutError) as caught:
                await core.send(HttpRequest(server.url(), connect_timeout=TIMEOUT, read_timeout=0.1))
            release.set()
            assert (await first).body == "late"
    finally:
        await core.aclose()
    assert "free connection" in caught.value.phase
    assert len(server.received) == 1


async def test_a_refused_connection_is_a_connection_error(core: HttpCore) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(HttpConnectionError) as caught:
            await core.send(HttpRequest(f"http://127.0.0.1:{port}/", connect_timeout=1))
    assert "could not connect" in str(caught.value)


async def test_a_truncated_body_says_the_server_closed_early(core: HttpCore) -> None:
    async with LoopbackServer(raw(ThenClose(answer(b"0123456789")[:-5]))) as server:
        with pytest.raises(HttpConnectionError, match="closed the connection before the response was complete"):
            await core.send(HttpRequest(server.url()))


async def test_a_reset_connection_is_a_connection_error(core: HttpCore) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server = await asyncio.start_server(reset, "127.0.0.1", 0)
    try:
        with pytest.raises(HttpConnectionError):
            await core.send(HttpRequest(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"))
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("garbage", [b"NOT HTTP AT ALL\r\n\r\n", b"HTTP/1.1 abc Nope\r\n\r\n"])
async def test_an_answer_that_is_not_http_is_a_connection_error(core: HttpCore, garbage: bytes) -> None:
    async with LoopbackServer(raw(garbage)) as server:
        with pytest.raises(HttpConnectionError):
            await core.send(HttpRequest(server.url()))


async def test_a_head_bomb_is_refused_with_its_own_error(core: HttpCore) -> None:
    bomb = answer(b"ok", *(f"X-Filler-{n}: {'h' * 1000}" for n in range(20_000)))
    async with LoopbackServer(raw(bomb)) as server:
        with pytest.raises(ResponseHeadTooLargeError) as caught:
            await core.send(HttpRequest(server.url()))
    assert "64 KiB" in str(caught.value)


async def test_a_head_just_over_64_kib_in_few_lines_is_refused_too(core: HttpCore) -> None:
    big = answer(b"ok", *(f"X-Filler-{n}: {'h' * 8000}" for n in range(9)))
    async with LoopbackServer(raw(big)) as server:
        with pytest.raises(ResponseHeadTooLargeError):
            await core.send(HttpRequest(server.url()))


async def test_a_line_break_in_a_header_value_is_refused_before_sending_without_telling_the_value(
    core: HttpCore,
) -> None:
    async with LoopbackServer(raw(answer())) as server:
        with pytest.raises(InvalidRequestError) as caught:
            await core.send(HttpRequest(server.url(), headers={"Authorization": "Bearer hf_secret\r\nX-Evil: 1"}))
    assert "Authorization" in str(caught.value)
    assert "hf_secret" not in str(caught.value)
    assert server.received == []


async def test_a_url_that_is_not_http_is_refused(core: HttpCore) -> None:
    with pytest.raises(InvalidRequestError, match="http"):
        await core.send(HttpRequest("ftp://example.com/file"))


def test_a_default_guard_blocks_metadata_without_configuration() -> None:
    assert HttpCore(max_response_bytes=1024, environ={}).guard.blocked == DestinationGuard().blocked
