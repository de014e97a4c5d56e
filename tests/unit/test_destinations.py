"""The outbound guard: a modeller controls the URL, so metadata and link-local addresses are never called."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from worker import destinations
from worker.destinations import BlockedDestinationError, DestinationGuard

PUBLIC = "203.0.113.10"  # TEST-NET-3, stands for any public address


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """A fake resolver: host name -> addresses; unknown names do not resolve."""
    table: dict[str, list[str]] = {}

    async def fake_getaddrinfo(self, host, port, *, type=0, **kwargs):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in table[host]
        ]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", fake_getaddrinfo)
    return table


async def _blocked(guard: DestinationGuard, url: str) -> str:
    with pytest.raises(BlockedDestinationError) as caught:
        await guard.check(url)
    return str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://169.254.170.2/v2/credentials",
        "http://[fe80::1]/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://0.0.0.0:8080/",
    ],
)
async def test_link_local_and_metadata_addresses_are_always_blocked(url: str) -> None:
    message = await _blocked(DestinationGuard(), url)
    assert "link-local or cloud metadata" in message


@pytest.mark.parametrize("host", ["metadata.google.internal", "METADATA.google.internal", "metadata", "instance-data"])
async def test_metadata_host_names_are_blocked_before_any_lookup(host: str, dns: dict[str, list[str]]) -> None:
    message = await _blocked(DestinationGuard(), f"http://{host}/computeMetadata/v1/")
    assert "metadata" in message


async def test_a_name_that_resolves_to_a_metadata_address_is_blocked(dns: dict[str, list[str]]) -> None:
    dns["innocent.example.com"] = [PUBLIC, "169.254.169.254"]
    message = await _blocked(DestinationGuard(), "https://innocent.example.com/models/x")
    assert "innocent.example.com" in message
    assert "169.254.169.254" in message


async def test_a_decimal_ip_is_checked_as_the_address_it_means() -> None:
    # 2852039166 == 169.254.169.254; the system resolver turns it into the dotted form.
    await _blocked(DestinationGuard(), "http://2852039166/latest/meta-data/")


@pytest.mark.parametrize("url", ["http://[::ffff:169.254.169.254]/", "http://[::ffff:a9fe:a9fe]/latest/meta-data/"])
async def test_ipv4_mapped_metadata_addresses_are_blocked(url: str) -> None:
    await _blocked(DestinationGuard(), url)


async def test_ordinary_hosts_pass(dns: dict[str, list[str]]) -> None:
    dns["router.huggingface.co"] = [PUBLIC, "2001:db8::1"]
    guard = DestinationGuard()
    await guard.check("https://router.huggingface.co/hf-inference/models/x")
    await guard.check("http://127.0.0.1:8080/")  # a local TGI is allowed unless blocked
    await guard.check("http://[::1]:8080/")


async def test_an_unknown_host_is_left_to_the_http_client(dns: dict[str, list[str]]) -> None:
    await DestinationGuard().check("https://does-not-exist.example/")


async def test_an_allowed_host_is_looked_up_again_only_after_the_wires_dns_cache_expires(
    dns: dict[str, list[str]],
) -> None:
    now = [1000.0]
    guard = DestinationGuard(clock=lambda: now[0])
    dns["model.example"] = [PUBLIC]
    await guard.check("https://model.example/a")
    dns["model.example"] = ["169.254.169.254"]  # DNS now points at the metadata service
    now[0] += 9.9
    await guard.check("https://model.example/b")  # within the 10 s the wire keeps the old address too
    now[0] += 0.2
    assert "169.254.169.254" in await _blocked(guard, "https://model.example/c")


async def test_a_name_that_did_not_resolve_is_checked_again_once_it_does(dns: dict[str, list[str]]) -> None:
    guard = DestinationGuard(clock=lambda: 1000.0)
    await guard.check("https://later.example/")
    dns["later.example"] = ["169.254.169.254"]
    assert "169.254.169.254" in await _blocked(guard, "https://later.example/")


async def test_a_url_without_host_is_refused() -> None:
    message = await _blocked(DestinationGuard(), "file:///etc/passwd")
    assert "no host" in message


async def test_the_allow_list_admits_only_matching_hosts(dns: dict[str, list[str]]) -> None:
    dns["router.huggingface.co"] = [PUBLIC]
    dns["x.endpoints.huggingface.cloud"] = [PUBLIC]
    dns["evil.example.com"] = [PUBLIC]
    guard = DestinationGuard(allowed_hosts=["router.huggingface.co", "*.endpoints.huggingface.cloud"])
    await guard.check("https://router.huggingface.co/v1/chat/completions")
    await guard.check("https://X.Endpoints.HuggingFace.cloud/")
    message = await _blocked(guard, "https://evil.example.com/")
    assert "evil.example.com" in message
    assert "HF_CONNECTOR_ALLOWED_HOSTS" in message


async def test_the_block_list_matches_names_and_addresses(dns: dict[str, list[str]]) -> None:
    dns["internal.corp"] = ["10.1.2.3"]
    dns["ok.example.com"] = [PUBLIC]
    guard = DestinationGuard(blocked_hosts=["*.corp", "10.*", "127.0.0.1"])
    message = await _blocked(guard, "http://internal.corp/")
    assert "HF_CONNECTOR_BLOCKED_HOSTS" in message
    await _blocked(guard, "http://10.9.9.9/")
    await _blocked(guard, "http://127.0.0.1:9600/actuator")
    await guard.check("https://ok.example.com/")


async def test_the_block_list_applies_to_what_a_name_resolves_to(dns: dict[str, list[str]]) -> None:
    dns["looks-public.example.com"] = ["10.0.0.7"]
    message = await _blocked(DestinationGuard(blocked_hosts=["10.*"]), "https://looks-public.example.com/")
    assert "10.0.0.7" in message


async def test_a_blocked_name_wins_over_the_allow_list(dns: dict[str, list[str]]) -> None:
    dns["a.example.com"] = [PUBLIC]
    guard = DestinationGuard(allowed_hosts=["*.example.com"], blocked_hosts=["a.example.com"])
    await _blocked(guard, "https://a.example.com/")


async def test_addresses_of_a_literal_needs_no_lookup(dns: dict[str, list[str]]) -> None:
    assert await destinations._addresses_of("[2001:db8::5]") == [ipaddress.ip_address("2001:db8::5")]
    assert await destinations._addresses_of("192.0.2.1") == [ipaddress.ip_address("192.0.2.1")]


async def test_scoped_ipv6_results_are_understood(dns: dict[str, list[str]]) -> None:
    dns["scoped.example"] = ["fe80::1%eth0"]
    assert await destinations._addresses_of("scoped.example") == [ipaddress.ip_address("fe80::1")]
    await _blocked(DestinationGuard(), "http://scoped.example/")
