"""The HTTP core: `{status, headers, body}` from any answer, and one clear error for every way a call fails."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from worker import destinations
from worker.destinations import DestinationGuard
from worker.http_core import (
    DestinationNotAllowedError,
    HttpConnectionError,
    HttpCore,
    HttpRequest,
    HttpTimeoutError,
    InvalidResponseError,
    ResponseTooLargeError,
    decode_body,
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
URL = "https://router.huggingface.co/hf-inference/models/org/model"


@pytest.fixture(autouse=True)
def offline_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Host names resolve to a public test address, without touching the network."""
    real = destinations._addresses_of

    async def fake(host: str) -> list[Any]:
        try:
            return await real(host) if _is_literal(host) else [ipaddress.ip_address("203.0.113.10")]
        except ValueError:
            return []

    monkeypatch.setattr(destinations, "_addresses_of", fake)


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


Handler = Callable[[httpx.Request], Any]


@pytest.fixture
async def make_core() -> AsyncIterator[Callable[..., HttpCore]]:
    cores: list[HttpCore] = []

    def make(handler: Handler, **kwargs: Any) -> HttpCore:
        kwargs.setdefault("max_response_bytes", 1024 * 1024)
        core = HttpCore(transport=httpx.MockTransport(handler), **kwargs)
        cores.append(core)
        return core

    yield make
    for core in cores:
        await core.aclose()


# --- answers ----------------------------------------------------------------------------------------


async def test_a_json_answer_is_parsed_with_lower_case_headers(make_core: Callable[..., HttpCore]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json=[{"summary_text": "short"}],
            headers={"X-Request-Id": "req-1", "X-Compute-Time": "0.5"},
        )

    result = await make_core(handler).send(HttpRequest(URL, json_body={"inputs": "long"}))
    assert result.status == 200
    assert result.reason == "OK"
    assert result.body == [{"summary_text": "short"}]
    assert result.headers["x-request-id"] == "req-1"
    assert result.headers["x-compute-time"] == "0.5"
    assert result.elapsed_seconds >= 0
    assert result.as_variable() == {"status": 200, "headers": result.headers, "body": result.body}


async def test_the_request_carries_method_headers_and_json_body(make_core: Callable[..., HttpCore]) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    result = await make_core(handler).send(
        HttpRequest(URL, headers={"authorization": "Bearer t", "x-use-cache": "false"}, json_body={"inputs": "é"})
    )
    assert result.body is None
    assert seen[0].method == "POST"
    assert seen[0].headers["authorization"] == "Bearer t"
    assert seen[0].headers["x-use-cache"] == "false"
    assert json.loads(seen[0].content) == {"inputs": "é"}


async def test_raw_content_is_sent_as_is(make_core: Callable[..., HttpCore]) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    await make_core(handler).send(HttpRequest(URL, headers={"content-type": "image/png"}, content=PNG, json_body={}))
    assert seen[0].content == PNG
    assert seen[0].headers["content-type"] == "image/png"


async def test_a_png_answer_becomes_base64_with_its_content_type(make_core: Callable[..., HttpCore]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=PNG, headers={"content-type": "image/png"})

    result = await make_core(handler).send(HttpRequest(URL, json_body={"inputs": "a cat"}))
    assert result.body == {
        "contentType": "image/png",
        "encoding": "base64",
        "size": len(PNG),
        "data": base64.b64encode(PNG).decode(),
    }


async def test_repeated_headers_are_joined(make_core: Callable[..., HttpCore]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=[("Vary", "Accept"), ("vary", "Origin")], json={})

    result = await make_core(handler).send(HttpRequest(URL))
    assert result.headers["vary"] == "Accept, Origin"


async def test_a_cookie_set_by_one_call_is_not_sent_with_the_next(make_core: Callable[..., HttpCore]) -> None:
    sent: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"Set-Cookie": "session=job-one; Path=/"}, json={})

    core = make_core(handler)
    await core.send(HttpRequest(URL))
    await core.send(HttpRequest(URL))
    assert sent == [None, None]


@pytest.mark.parametrize(
    ("raw", "content_type", "body"),
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
def test_bodies_are_decoded_by_their_content_type(raw: bytes, content_type: str, body: Any) -> None:
    assert decode_body(raw, content_type) == body


def test_an_undeclared_binary_body_is_base64_octet_stream() -> None:
    body = decode_body(b"\x00\x01\x02\xff", "")
    assert body["contentType"] == "application/octet-stream"
    assert base64.b64decode(body["data"]) == b"\x00\x01\x02\xff"


def test_audio_is_binary() -> None:
    body = decode_body(b"fLaC\x00\x00\x00\x22", "audio/flac")
    assert body["contentType"] == "audio/flac"
    assert body["size"] == 8


def test_a_body_that_claims_json_but_is_not_is_an_invalid_response() -> None:
    with pytest.raises(InvalidResponseError) as caught:
        decode_body(b"<html>502 Bad Gateway</html>", "application/json")
    assert "application/json" in str(caught.value)


async def test_an_unknown_charset_does_not_crash_the_call(make_core: Callable[..., HttpCore]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"hello", headers={"content-type": "text/plain; charset=klingon"})

    result = await make_core(handler).send(HttpRequest(URL))
    assert result.body == "hello"


# --- size -------------------------------------------------------------------------------------------


async def test_a_declared_oversized_body_is_refused(make_core: Callable[..., HttpCore]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 5000, headers={"content-type": "text/plain"})

    with pytest.raises(ResponseTooLargeError) as caught:
        await make_core(handler, max_response_bytes=1024).send(HttpRequest(URL))
    assert caught.value.limit == 1024
    assert "1024" in str(caught.value)


async def test_a_streamed_oversized_body_without_length_is_refused(make_core: Callable[..., HttpCore]) -> None:
    async def endless() -> AsyncIterator[bytes]:
        for _ in range(1000):
            yield b"y" * 512

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless(), headers={"content-type": "text/plain"})

    with pytest.raises(ResponseTooLargeError):
        await make_core(handler, max_response_bytes=2048).send(HttpRequest(URL))


async def test_a_body_at_the_limit_is_fine(make_core: Callable[..., HttpCore]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"z" * 1024, headers={"content-type": "text/plain"})

    result = await make_core(handler, max_response_bytes=1024).send(HttpRequest(URL))
    assert result.body == "z" * 1024


# --- failures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exception", "phase", "seconds"),
    [
        (httpx.ReadTimeout("read timed out"), "response", 7.0),
        (httpx.ConnectTimeout("connect timed out"), "connection", 3.0),
        (httpx.PoolTimeout("pool"), "response", 7.0),
    ],
)
async def test_timeouts_say_which_phase_and_how_long(
    make_core: Callable[..., HttpCore], exception: Exception, phase: str, seconds: float
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exception

    with pytest.raises(HttpTimeoutError) as caught:
        await make_core(handler).send(HttpRequest(URL, connect_timeout=3, read_timeout=7))
    assert caught.value.phase == phase
    assert caught.value.seconds == seconds
    assert f"{seconds:g} s" in str(caught.value)


async def test_a_body_that_trickles_forever_ends_with_the_total_timeout(make_core: Callable[..., HttpCore]) -> None:
    async def trickle() -> AsyncIterator[bytes]:
        while True:
            yield b"."
            await asyncio.sleep(0.005)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=trickle(), headers={"content-type": "text/plain"})

    with pytest.raises(HttpTimeoutError) as caught:
        await make_core(handler).send(HttpRequest(URL, connect_timeout=0.02, read_timeout=0.03))
    assert caught.value.phase == "complete response"


async def test_a_server_that_never_answers_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads the request and never answers; ends when the client hangs up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    core = HttpCore(max_response_bytes=1024)
    try:
        with pytest.raises(HttpTimeoutError) as caught:
            await core.send(HttpRequest(f"http://127.0.0.1:{port}/", json_body={}, read_timeout=0.05))
        assert caught.value.phase == "response"
    finally:
        await core.aclose()
        server.close()


async def test_a_refused_connection_is_a_connection_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    core = HttpCore(max_response_bytes=1024)
    try:
        with pytest.raises(HttpConnectionError) as caught:
            await core.send(HttpRequest(f"http://127.0.0.1:{port}/", connect_timeout=1))
        assert "could not connect" in str(caught.value)
    finally:
        await core.aclose()


@pytest.mark.parametrize(
    ("exception", "words"),
    [
        (httpx.ConnectError("[Errno -2] Name or service not known"), "could not connect"),
        (httpx.RemoteProtocolError("peer closed"), "closed the connection"),
        (httpx.ReadError("connection reset"), "broke while reading the response (connection reset)"),
        (httpx.WriteError("broken pipe"), "WriteError: broken pipe"),
    ],
)
async def test_transport_errors_become_connection_errors(
    make_core: Callable[..., HttpCore], exception: Exception, words: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exception

    with pytest.raises(HttpConnectionError) as caught:
        await make_core(handler).send(HttpRequest(URL))
    assert words in str(caught.value)


# --- destinations and redirects ---------------------------------------------------------------------


async def test_a_blocked_destination_is_never_called(make_core: Callable[..., HttpCore]) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    core = make_core(handler, guard=DestinationGuard(blocked_hosts=["*.example.com"]))
    with pytest.raises(DestinationNotAllowedError) as caught:
        await core.send(HttpRequest("https://api.example.com/"))
    assert "HF_CONNECTOR_BLOCKED_HOSTS" in str(caught.value)
    with pytest.raises(DestinationNotAllowedError):
        await core.send(HttpRequest("http://169.254.169.254/latest/meta-data/"))
    assert calls == []


def _redirecting(target: str, status: int = 302) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(status, headers={"location": target})
        return httpx.Response(200, json={"final": str(request.url)})

    return handler, seen


async def test_redirects_are_not_followed_by_default(make_core: Callable[..., HttpCore]) -> None:
    handler, seen = _redirecting("https://elsewhere.example.com/")
    result = await make_core(handler).send(HttpRequest(URL))
    assert result.status == 302
    assert result.headers["location"] == "https://elsewhere.example.com/"
    assert len(seen) == 1


async def test_followed_redirects_reach_the_target(make_core: Callable[..., HttpCore]) -> None:
    handler, seen = _redirecting("/hf-inference/models/org/moved", status=307)
    result = await make_core(handler, follow_redirects=True).send(HttpRequest(URL, json_body={"inputs": "x"}))
    assert result.status == 200
    assert result.body == {"final": "https://router.huggingface.co/hf-inference/models/org/moved"}
    assert seen[1].method == "POST"
    assert json.loads(seen[1].content) == {"inputs": "x"}


async def test_a_303_is_followed_with_get(make_core: Callable[..., HttpCore]) -> None:
    handler, seen = _redirecting("https://router.huggingface.co/result/1", status=303)
    await make_core(handler, follow_redirects=True).send(HttpRequest(URL, json_body={"inputs": "x"}))
    assert seen[1].method == "GET"


async def test_each_redirect_hop_passes_the_guard(make_core: Callable[..., HttpCore]) -> None:
    handler, seen = _redirecting("http://169.254.169.254/latest/meta-data/iam/")
    with pytest.raises(DestinationNotAllowedError) as caught:
        await make_core(handler, follow_redirects=True).send(HttpRequest(URL))
    assert "169.254.169.254" in str(caught.value)
    assert len(seen) == 1


async def test_a_redirect_loop_stops(make_core: Callable[..., HttpCore]) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"location": f"/loop/{len(seen)}"})

    result = await make_core(handler, follow_redirects=True).send(HttpRequest(URL))
    assert result.status == 302
    assert len(seen) == 6  # the first call and five redirects


async def test_a_redirect_to_another_host_does_not_carry_the_token(make_core: Callable[..., HttpCore]) -> None:
    handler, seen = _redirecting("https://collector.example.net/steal", status=307)
    request = HttpRequest(URL, headers={"authorization": "Bearer hf_workerToken"}, json_body={"inputs": "x"})
    await make_core(handler, follow_redirects=True).send(request)
    assert seen[1].url.host == "collector.example.net"
    assert "authorization" not in seen[1].headers


async def test_a_read_error_without_text_still_explains_itself(make_core: Callable[..., HttpCore]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("")

    with pytest.raises(HttpConnectionError) as caught:
        await make_core(handler).send(HttpRequest(URL))
    assert "reset by peer" in str(caught.value)
