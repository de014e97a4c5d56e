"""The outbound guard on the production HTTP path: the address dialled is the address checked, redirects
are followed as browsers follow them, and proxies are honoured or refused at start with one clear line."""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from tests.support.loopback_http import LoopbackServer, Received, answer
from worker.config import ConfigurationError, load_settings
from worker.destinations import DestinationGuard
from worker.http_core import DestinationNotAllowedError, HttpCore, HttpRequest, TooManyRedirectsError
from worker.http_proxy import ProxyConfigurationError, proxy_routes

TIMEOUT = 5.0


class RebindingResolver(AbstractResolver):
    """Answers each lookup with the next address of its list, the last one for ever after."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        address = self.addresses.pop(0) if len(self.addresses) > 1 else self.addresses[0]
        kind = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [{"hostname": host, "host": address, "port": port, "family": kind, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        return None


async def _ok(received: Received) -> bytes:
    return answer(b"reached", "Content-Type: text/plain", "Connection: close")


@pytest.fixture
async def servers() -> AsyncIterator[tuple[LoopbackServer, LoopbackServer]]:
    """An allowed server on 127.0.0.2 and a blocked one on 127.0.0.1, on the same port."""
    blocked = LoopbackServer(_ok, host="127.0.0.1")
    async with blocked, LoopbackServer(_ok, host="127.0.0.2", port=blocked.port) as allowed:
        yield allowed, blocked


async def test_a_rebinding_name_never_reaches_the_blocked_address(
    servers: tuple[LoopbackServer, LoopbackServer],
) -> None:
    allowed, blocked = servers
    resolver = RebindingResolver("127.0.0.2", "127.0.0.1", "169.254.169.254")
    core = HttpCore(
        max_response_bytes=1024,
        guard=DestinationGuard(blocked_hosts=["127.0.0.1"]),
        resolver=resolver,
        environ={},
    )
    url = f"http://model.example:{allowed.port}/"
    try:
        assert (await core.send(HttpRequest(url, connect_timeout=TIMEOUT))).body == "reached"
        with pytest.raises(DestinationNotAllowedError, match=r"127\.0\.0\.1"):
            await core.send(HttpRequest(url, connect_timeout=TIMEOUT))
        with pytest.raises(DestinationNotAllowedError, match="link-local or cloud metadata"):
            await core.send(HttpRequest(url, connect_timeout=TIMEOUT))
    finally:
        await core.aclose()
    assert len(resolver.lookups) == 3  # each new connection dials what its own lookup answered
    assert len(allowed.received) == 1
    assert blocked.received == []


@pytest.mark.parametrize("address", ["169.254.169.254", "::ffff:169.254.169.254", "fe80::1"])
async def test_a_name_resolving_to_a_metadata_address_is_blocked_at_connect(address: str) -> None:
    core = HttpCore(max_response_bytes=1024, resolver=RebindingResolver(address), environ={})
    try:
        with pytest.raises(DestinationNotAllowedError, match="link-local or cloud metadata"):
            await core.send(HttpRequest("http://innocent.example/", connect_timeout=TIMEOUT))
    finally:
        await core.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "https://api.blocked.example/",
    ],
)
async def test_blocked_urls_are_refused_before_any_connection(url: str) -> None:
    resolver = RebindingResolver("127.0.0.1")
    core = HttpCore(
        max_response_bytes=1024,
        guard=DestinationGuard(blocked_hosts=["*.blocked.example"]),
        resolver=resolver,
        environ={},
    )
    try:
        with pytest.raises(DestinationNotAllowedError):
            await core.send(HttpRequest(url))
    finally:
        await core.aclose()
    assert resolver.lookups == []


# --- redirects --------------------------------------------------------------------------------------


def _redirecting(status: int, location: str) -> Any:
    async def respond(received: Received) -> bytes:
        if received.target == "/start":
            return answer(b"", f"Location: {location}", status=f"{status} Moved")
        return answer(b'{"ok": true}', "Content-Type: application/json")

    return respond


@pytest.fixture
async def following() -> AsyncIterator[HttpCore]:
    core = HttpCore(max_response_bytes=1024, follow_redirects=True, environ={})
    yield core
    await core.aclose()


@pytest.mark.parametrize(
    ("status", "method", "has_body"),
    [(301, "GET", False), (302, "GET", False), (303, "GET", False), (307, "POST", True), (308, "POST", True)],
)
async def test_redirected_posts_follow_browser_rules(
    following: HttpCore, status: int, method: str, has_body: bool
) -> None:
    async with LoopbackServer(_redirecting(status, "/next")) as server:
        result = await following.send(HttpRequest(server.url("/start"), json_body={"inputs": "x"}))
    assert result.body == {"ok": True}
    hop = server.received[1]
    assert (hop.method, hop.target) == (method, "/next")
    assert (hop.body == b'{"inputs":"x"}') is has_body
    assert ("content-type" in hop.headers) is has_body


@pytest.mark.parametrize("name", ["authorization", "Authorization", "AUTHORIZATION", "Cookie"])
async def test_a_cross_origin_hop_drops_credentials_in_any_case(following: HttpCore, name: str) -> None:
    other = LoopbackServer(_ok, host="127.0.0.2")
    async with other:
        first = LoopbackServer(_redirecting(307, other.url("/steal")))
        async with first:
            await following.send(HttpRequest(first.url("/start"), headers={name: "Bearer hf_secret"}))
    assert first.received[0].headers.get(name) == "Bearer hf_secret"
    assert other.received[0].target == "/steal"
    assert name.lower() not in other.received[0].headers


async def test_a_same_origin_hop_keeps_the_token(following: HttpCore) -> None:
    async with LoopbackServer(_redirecting(307, "/next")) as server:
        await following.send(HttpRequest(server.url("/start"), headers={"Authorization": "Bearer t"}))
    assert server.received[1].headers["authorization"] == "Bearer t"


async def test_each_hop_passes_the_guard(following: HttpCore) -> None:
    async with LoopbackServer(_redirecting(302, "http://169.254.169.254/latest/meta-data/iam/")) as server:
        with pytest.raises(DestinationNotAllowedError, match=r"169\.254\.169\.254"):
            await following.send(HttpRequest(server.url("/start")))
    assert len(server.received) == 1


async def test_past_the_redirect_limit_the_call_fails_clearly(following: HttpCore) -> None:
    async def loop(received: Received) -> bytes:
        return answer(b"", f"Location: /loop/{len(server.received)}", status="302 Found")

    async with LoopbackServer(loop) as server:
        with pytest.raises(TooManyRedirectsError, match="more than 5 redirects"):
            await following.send(HttpRequest(server.url("/start")))
    assert len(server.received) == 6  # the first call and five redirects


async def test_redirects_are_not_followed_by_default() -> None:
    core = HttpCore(max_response_bytes=1024, environ={})
    try:
        async with LoopbackServer(_redirecting(302, "/next")) as server:
            result = await core.send(HttpRequest(server.url("/start")))
    finally:
        await core.aclose()
    assert result.status == 302
    assert result.headers["location"] == "/next"
    assert len(server.received) == 1


# --- proxies ----------------------------------------------------------------------------------------


async def test_an_http_proxy_is_used_and_no_proxy_bypasses_it() -> None:
    async def proxy(received: Received) -> bytes:
        return answer(b"via proxy", "Content-Type: text/plain")

    async with LoopbackServer(proxy) as proxy_server, LoopbackServer(_ok, host="127.0.0.2") as direct:
        environ = {"HTTP_PROXY": proxy_server.url(""), "NO_PROXY": "127.0.0.2"}
        core = HttpCore(max_response_bytes=1024, environ=environ)
        try:
            proxied = await core.send(HttpRequest("http://model.example/x"))
            bypassed = await core.send(HttpRequest(direct.url("/y")))
        finally:
            await core.aclose()
    assert proxied.body == "via proxy"
    assert proxy_server.received[0].target == "http://model.example/x"  # the proxy resolves the name
    assert bypassed.body == "reached"
    assert direct.received[0].target == "/y"


def test_a_socks_proxy_without_the_extra_stops_the_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp_socks", None)  # as if the 'socks' extra were not installed
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "aiohttp_socks" else True)
    monkeypatch.setenv("ALL_PROXY", "socks5://user:pa55word@proxy.internal:1080")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert "ALL_PROXY" in message
    assert "[socks]" in message
    assert "pa55word" not in message


def test_a_socks_proxy_with_the_extra_is_accepted() -> None:
    routes = proxy_routes({"ALL_PROXY": "socks5://proxy.internal:1080", "no_proxy": "localhost"})
    assert routes.socks is not None
    assert routes.for_url("https", "router.huggingface.co") == routes.socks
    assert routes.for_url("http", "localhost") is None


@pytest.mark.parametrize("value", ["ftp://proxy:21", "proxy-without-scheme:3128"])
def test_an_unusable_proxy_names_its_variable(value: str) -> None:
    with pytest.raises(ProxyConfigurationError, match="HTTPS_PROXY"):
        proxy_routes({"HTTPS_PROXY": value})


# --- TLS --------------------------------------------------------------------------------------------


def test_a_ca_bundle_that_is_not_pem_stops_the_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate")
    monkeypatch.setenv("HF_CONNECTOR_CA_BUNDLE", str(bundle))
    with pytest.raises(ConfigurationError, match="HF_CONNECTOR_CA_BUNDLE"):
        load_settings()


def test_a_missing_ca_bundle_stops_the_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("HF_CONNECTOR_CA_BUNDLE", str(tmp_path / "absent.pem"))
    with pytest.raises(ConfigurationError, match="HF_CONNECTOR_CA_BUNDLE"):
        load_settings()
