"""Which hosts the worker may call: allow-list, block-list and the addresses that are never a model.

Link-local and cloud metadata addresses are blocked by default, because a process modeller controls
the URL and must not be able to make the worker read the cloud instance's credentials (SSRF).
Host names are resolved and every address they resolve to is checked, so DNS cannot smuggle one in.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from worker.http_transport import DNS_CACHE_SECONDS

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data", "metadata.azure.com"})
_ALWAYS_BLOCKED_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),  # link-local, incl. 169.254.169.254 (AWS, GCP, Azure)
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS IMDS over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
    ipaddress.ip_network("0.0.0.0/8"),
)
# A host found allowed is not checked again for this long: as long as the HTTP wire keeps the addresses
# it resolved (worker/http_transport.py, DNS_CACHE_SECONDS), so no connection uses an address newer
# than the last check's.
_ALLOWED_FOR_SECONDS = DNS_CACHE_SECONDS
_MAX_REMEMBERED_HOSTS = 1024


class BlockedDestinationError(Exception):
    """The URL's host is not allowed; the message says which rule and how to change it."""


class DestinationGuard:
    def __init__(
        self,
        allowed_hosts: Sequence[str] = (),
        blocked_hosts: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowed = [pattern.lower() for pattern in allowed_hosts]
        self.blocked = [pattern.lower() for pattern in blocked_hosts]
        self._clock = clock
        self._allowed_until: dict[str, float] = {}

    async def check(self, url: str) -> None:
        host = (urlsplit(url).hostname or "").lower()
        if self._allowed_until.get(host, 0.0) > self._clock():
            return
        if not host:
            raise BlockedDestinationError(f"'{url}' has no host")
        self._check_name(host)
        addresses = await _addresses_of(host)
        for address in addresses:
            self._check_address(host, address)
        if addresses:  # a name that does not resolve yet is checked again once it does
            self._remember_allowed(host)

    def _remember_allowed(self, host: str) -> None:
        if len(self._allowed_until) >= _MAX_REMEMBERED_HOSTS:
            self._allowed_until.clear()
        self._allowed_until[host] = self._clock() + _ALLOWED_FOR_SECONDS

    def _check_name(self, host: str) -> None:
        if host in METADATA_HOSTS:
            raise BlockedDestinationError(f"calls to the cloud metadata host '{host}' are blocked")
        if any(fnmatch.fnmatch(host, pattern) for pattern in self.blocked):
            raise BlockedDestinationError(f"host '{host}' is blocked by HF_CONNECTOR_BLOCKED_HOSTS")
        if self.allowed and not any(fnmatch.fnmatch(host, pattern) for pattern in self.allowed):
            raise BlockedDestinationError(
                f"host '{host}' is not in HF_CONNECTOR_ALLOWED_HOSTS ({', '.join(self.allowed)})"
            )

    def _check_address(self, host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:169.254.169.254 is the metadata service too
        if any(address in network for network in _ALWAYS_BLOCKED_NETWORKS):
            raise BlockedDestinationError(
                f"host '{host}' resolves to {address}, a link-local or cloud metadata address, which is blocked"
            )
        if any(fnmatch.fnmatch(str(address), pattern) for pattern in self.blocked):
            raise BlockedDestinationError(f"address {address} is blocked by HF_CONNECTOR_BLOCKED_HOSTS")


async def _addresses_of(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []  # the HTTP client reports the unknown host with its own clear error
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
