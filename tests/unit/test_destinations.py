"""The outbound guard: a modeller controls the URL, so metadata and link-local addresses are never called.

Names (and literal addresses) are checked by `check_url`; resolved addresses by `GuardedResolver`, the
resolver the HTTP client dials with. tests/unit/test_http_guard.py drives both through the client.
"""

from __future__ import annotations

import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from worker.destinations import BlockedDestinationError, DestinationGuard, GuardedResolver

PUBLIC = "203.0.113.10"  # TEST-NET-3, stands for any public address


class TableResolver(AbstractResolver):
    """host name -> addresses."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {"hostname": host, "host": a, "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}
            for a in self.table[host]
        ]

    async def close(self) -> None:
        return None


async def _dialled(guard: DestinationGuard, host: str, *addresses: str) -> list[str]:
    """What the HTTP client may dial for `host`; raises when the guard blocks it."""
    guard.check_url(f"https://{host}/")
    results = await GuardedResolver(guard, TableResolver({host: list(addresses)})).resolve(host, 443)
    return [result["host"] for result in results]


def _name_blocked(guard: DestinationGuard, url: str) -> str:
    with pytest.raises(BlockedDestinationError) as caught:
        guard.check_url(url)
    return str(caught.value)


async def _address_blocked(guard: DestinationGuard, host: str, *addresses: str) -> str:
    with pytest.raises(BlockedDestinationError) as caught:
        await _dialled(guard, host, *addresses)
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
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
        "http://2852039166/latest/meta-data/",
        "http://0xa9fea9fe/latest/meta-data/",
        "http://0251.0376.0251.0376/latest/meta-data/",
    ],
)
def test_literal_link_local_and_metadata_addresses_are_always_blocked(url: str) -> None:
    assert "link-local or cloud metadata" in _name_blocked(DestinationGuard(), url)


@pytest.mark.parametrize("host", ["metadata.google.internal", "METADATA.google.internal", "metadata", "instance-data"])
def test_metadata_host_names_are_blocked_before_any_lookup(host: str) -> None:
    assert "metadata" in _name_blocked(DestinationGuard(), f"http://{host}/computeMetadata/v1/")


@pytest.mark.parametrize("metadata", ["169.254.169.254", "::ffff:169.254.169.254", "fe80::1%eth0"])
async def test_a_name_that_resolves_to_a_metadata_address_is_blocked(metadata: str) -> None:
    message = await _address_blocked(DestinationGuard(), "innocent.example.com", PUBLIC, metadata)
    assert "innocent.example.com" in message
    assert "link-local or cloud metadata" in message


async def test_ordinary_hosts_pass() -> None:
    guard = DestinationGuard()
    assert await _dialled(guard, "router.huggingface.co", PUBLIC, "2001:db8::1") == [PUBLIC, "2001:db8::1"]
    guard.check_url("http://127.0.0.1:8080/")  # a local TGI is allowed unless blocked
    guard.check_url("http://[::1]:8080/")


def test_a_url_without_host_is_refused() -> None:
    assert "no host" in _name_blocked(DestinationGuard(), "file:///etc/passwd")


async def test_the_allow_list_admits_only_matching_hosts() -> None:
    guard = DestinationGuard(allowed_hosts=["router.huggingface.co", "*.endpoints.huggingface.cloud"])
    guard.check_url("https://router.huggingface.co/v1/chat/completions")
    guard.check_url("https://X.Endpoints.HuggingFace.cloud/")
    message = _name_blocked(guard, "https://evil.example.com/")
    assert "evil.example.com" in message
    assert "HF_CONNECTOR_ALLOWED_HOSTS" in message


async def test_the_block_list_matches_names_and_addresses() -> None:
    guard = DestinationGuard(blocked_hosts=["*.corp", "10.*", "127.0.0.1"])
    assert "HF_CONNECTOR_BLOCKED_HOSTS" in _name_blocked(guard, "http://internal.corp/")
    _name_blocked(guard, "http://10.9.9.9/")
    _name_blocked(guard, "http://127.0.0.1:9600/actuator")
    assert "10.0.0.7" in await _address_blocked(guard, "looks-public.example.com", "10.0.0.7")
    assert await _dialled(guard, "ok.example.com", PUBLIC) == [PUBLIC]


def test_a_blocked_name_wins_over_the_allow_list() -> None:
    guard = DestinationGuard(allowed_hosts=["*.example.com"], blocked_hosts=["a.example.com"])
    _name_blocked(guard, "https://a.example.com/")


async def test_a_configured_proxy_is_dialled_whatever_the_address_rules_say() -> None:
    guard = DestinationGuard(blocked_hosts=["10.*"])
    resolver = GuardedResolver(guard, TableResolver({"proxy.internal": ["10.0.0.3"]}), unchecked=["proxy.internal"])
    assert [r["host"] for r in await resolver.resolve("proxy.internal", 3128)] == ["10.0.0.3"]
