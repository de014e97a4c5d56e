"""The HTTP core's default wire (worker/http_transport.py) behaves as httpx's own transport did.

Each case sends the same request through `HttpCore()` (the wire) and through `HttpCore` on httpx's real
transport, against the loopback Hugging Face stand-in, and compares what comes back and what the
server saw.
"""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.support.hf_standin import Fault, HfStandin, Oversized, Reply
from worker.http_core import (
    HttpConnectionError,
    HttpCore,
    HttpError,
    HttpRequest,
    HttpTimeoutError,
    InvalidResponseError,
    ResponseTooLargeError,
)

MODEL = "org/model"
TOKEN = "hf_wireTestToken_1234"
_VARYING_HEADERS = {"date", "x-request-id", "x-compute-time"}


@pytest.fixture(scope="module")
def hf() -> Iterator[HfStandin]:
    with HfStandin(oversized_bytes=3 * 1024 * 1024, trickle_interval=0.01) as standin:
        yield standin


@pytest.fixture
async def cores() -> AsyncIterator[dict[str, HttpCore]]:
    made = {
        "wire": HttpCore(max_response_bytes=1024 * 1024),
        "httpx": HttpCore(max_response_bytes=1024 * 1024, transport=httpx.AsyncHTTPTransport()),
    }
    assert made["wire"]._wire is not None and made["httpx"]._wire is None
    yield made
    for core in made.values():
        await core.aclose()


def request(url: str, **kwargs: Any) -> HttpRequest:
    kwargs.setdefault("json_body", {"inputs": "Hello ünïcode", "parameters": {"max_length": 5}})
    return HttpRequest(
        url=f"{url}/hf-inference/models/{MODEL}",
        headers={"authorization": f"Bearer {TOKEN}", "x-custom": "1"},
        **kwargs,
    )


async def both(hf: HfStandin, cores: dict[str, HttpCore], *scripted: Any, **kwargs: Any) -> dict[str, Any]:
    """The result (or the error) of the same request through each core."""
    outcomes: dict[str, Any] = {}
    for name, core in cores.items():
        if scripted:
            hf.script(MODEL, *scripted)
        try:
            outcomes[name] = await core.send(request(hf.url, **kwargs))
        except HttpError as exc:
            outcomes[name] = exc
    return outcomes


async def test_a_json_answer_and_the_request_the_server_saw_are_the_same(
    hf: HfStandin, cores: dict[str, HttpCore]
) -> None:
    hf.reset()
    results = await both(hf, cores)

    wire, via_httpx = results["wire"], results["httpx"]
    assert (wire.status, wire.reason, wire.body) == (via_httpx.status, via_httpx.reason, via_httpx.body)
    assert {k: v for k, v in wire.headers.items() if k not in _VARYING_HEADERS} == {
        k: v for k, v in via_httpx.headers.items() if k not in _VARYING_HEADERS
    }
    seen_wire, seen_httpx = hf.requests_for(MODEL)
    assert seen_wire.body == seen_httpx.body
    assert json.loads(seen_wire.body) == {"inputs": "Hello ünïcode", "parameters": {"max_length": 5}}
    assert seen_wire.headers == seen_httpx.headers
    assert seen_wire.headers["content-type"] == "application/json"
    assert seen_wire.headers["authorization"] == f"Bearer {TOKEN}"


async def test_raw_content_keeps_the_callers_content_type(hf: HfStandin, cores: dict[str, HttpCore]) -> None:
    hf.reset()
    for core in cores.values():
        hf.script(MODEL, Reply.echo())
        await core.send(
            HttpRequest(
                url=f"{hf.url}/hf-inference/models/{MODEL}",
                headers={"authorization": f"Bearer {TOKEN}", "content-type": "image/png"},
                content=b"\x89PNG-bytes",
            )
        )
    seen_wire, seen_httpx = hf.requests_for(MODEL)
    assert seen_wire.headers == seen_httpx.headers
    assert seen_wire.headers["content-type"] == "image/png"
    assert seen_wire.body == seen_httpx.body == b"\x89PNG-bytes"


async def test_a_gzip_encoded_answer_is_decoded(hf: HfStandin, cores: dict[str, HttpCore]) -> None:
    payload = json.dumps([{"generated_text": "zipped"}]).encode()
    reply = Reply(body=gzip.compress(payload), headers={"content-type": "application/json", "content-encoding": "gzip"})
    results = await both(hf, cores, reply)
    assert results["wire"].body == results["httpx"].body == [{"generated_text": "zipped"}]


async def test_an_error_status_is_an_answer(hf: HfStandin, cores: dict[str, HttpCore]) -> None:
    results = await both(hf, cores, Reply.error(503, "Model org/model is currently loading"))
    assert results["wire"].status == results["httpx"].status == 503
    assert results["wire"].body == results["httpx"].body


@pytest.mark.parametrize(
    ("fault", "error", "wording"),
    [
        (Fault.RESET, HttpConnectionError, None),
        (Fault.TRUNCATED, HttpConnectionError, "closed the connection before the response was complete"),
        (Fault.INVALID_JSON, InvalidResponseError, "not valid JSON"),
        (Fault.OVERSIZED, ResponseTooLargeError, "larger than the limit"),
        (Oversized(3 * 1024 * 1024, chunked=True), ResponseTooLargeError, "larger than the limit"),
    ],
)
async def test_faults_become_the_same_errors(
    hf: HfStandin, cores: dict[str, HttpCore], fault: Any, error: type[Exception], wording: str | None
) -> None:
    results = await both(hf, cores, fault)
    for name in ("wire", "httpx"):
        assert isinstance(results[name], error), (name, results[name])
        if wording:
            assert wording in str(results[name])


async def test_no_answer_in_time_is_a_response_timeout(hf: HfStandin, cores: dict[str, HttpCore]) -> None:
    results = await both(hf, cores, Fault.HANG, read_timeout=0.3, connect_timeout=2.0)
    for name in ("wire", "httpx"):
        assert isinstance(results[name], HttpTimeoutError), (name, results[name])
        assert results[name].phase == "response"


async def test_a_body_that_never_ends_is_cut_by_the_total_timeout(hf: HfStandin, cores: dict[str, HttpCore]) -> None:
    results = await both(hf, cores, Fault.NEVER_ENDS, read_timeout=0.5, connect_timeout=0.5)
    for name in ("wire", "httpx"):
        assert isinstance(results[name], HttpTimeoutError), (name, results[name])
        assert results[name].phase == "complete response"


async def test_a_refused_connection_could_not_connect(cores: dict[str, HttpCore]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        for core in cores.values():
            with pytest.raises(HttpConnectionError, match="could not connect"):
                await core.send(request(f"http://127.0.0.1:{port}"))


async def test_redirects_are_followed_the_same_way(hf: HfStandin) -> None:
    hf.reset()
    target = f"/hf-inference/models/{MODEL}"
    made = [
        HttpCore(max_response_bytes=1 << 20, follow_redirects=True),
        HttpCore(max_response_bytes=1 << 20, follow_redirects=True, transport=httpx.AsyncHTTPTransport()),
    ]
    try:
        answers = []
        for core in made:
            hf.script("/hf-inference/models/org/moved", Reply(status=307, headers={"location": target}))
            answers.append(
                await core.send(
                    HttpRequest(
                        url=f"{hf.url}/hf-inference/models/org/moved",
                        headers={"authorization": f"Bearer {TOKEN}"},
                        json_body={"inputs": "x"},
                    )
                )
            )
    finally:
        for core in made:
            await core.aclose()
    assert answers[0].status == answers[1].status == 200
    assert answers[0].body == answers[1].body
    seen = hf.requests_for(MODEL)
    assert len(seen) == 2 and seen[0].headers == seen[1].headers
