"""Which hosts the worker may call: allow-list, block-list and the addresses that are never a model.

Link-local and cloud metadata addresses are blocked by default, because a process modeller controls
the URL and must not be able to make the worker read the cloud instance's credentials (SSRF).

Names are checked before a request is sent; addresses are checked when a connection is opened, by the
resolver the HTTP client dials with (`GuardedResolver`). So the address checked is the address dialled:
a name that answers a public address to one lookup and 127.0.0.1 to the next cannot slip through.
Behind a proxy the proxy resolves the name, so there the name rules apply and the address rules are
the proxy's.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import socket
from collections.abc import Collection, Sequence
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data", "metadata.azure.com"})
_ALWAYS_BLOCKED_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),  # link-local, incl. 169.254.169.254 (AWS, GCP, Azure)
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS IMDS over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
    ipaddress.ip_network("0.0.0.0/8"),
)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_NUMERIC_IPV4 = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)


_REMEMBERED_HOSTS = 1024


class BlockedDestinationError(Exception):
    """The URL's host is not allowed; the message says which rule and how to change it."""


class DestinationGuard:
    def __init__(self, allowed_hosts: Sequence[str] = (), blocked_hosts: Sequence[str] = ()) -> None:
        self.allowed = [pattern.lower() for pattern in allowed_hosts]
        self.blocked = [pattern.lower() for pattern in blocked_hosts]
        # The rules never change, and jobs call the same few hosts: each host's verdict is worked out once.
        self._verdicts: dict[str, str | None] = {}

    def check_url(self, url: str) -> None:
        """The name rules for the URL's host; a literal address is checked as an address too, since no
        lookup will see it."""
        host = urlsplit(url).hostname or ""
        if not host:
            raise BlockedDestinationError(f"'{url}' has no host")
        self.check_host(host)

    def check_host(self, host: str) -> None:
        """`check_url` for a host already parsed out of its URL (a name, or an address without brackets)."""
        if not host:
            raise BlockedDestinationError("the URL has no host")
        host = host.lower()
        if host not in self._verdicts:
            if len(self._verdicts) >= _REMEMBERED_HOSTS:
                self._verdicts.clear()
            self._verdicts[host] = self._host_verdict(host)
        verdict = self._verdicts[host]
        if verdict is not None:
            raise BlockedDestinationError(verdict)

    def _host_verdict(self, host: str) -> str | None:
        try:
            self.check_name(host)
            literal = literal_address(host)
            if literal is not None:
                self.check_address(host, literal)
        except BlockedDestinationError as exc:
            return str(exc)
        return None

    def check_name(self, host: str) -> None:
        if host in METADATA_HOSTS:
            raise BlockedDestinationError(f"calls to the cloud metadata host '{host}' are blocked")
        if any(fnmatch.fnmatch(host, pattern) for pattern in self.blocked):
            raise BlockedDestinationError(f"host '{host}' is blocked by HF_CONNECTOR_BLOCKED_HOSTS")
        if self.allowed and not any(fnmatch.fnmatch(host, pattern) for pattern in self.allowed):
            raise BlockedDestinationError(
                f"host '{host}' is not in HF_CONNECTOR_ALLOWED_HOSTS ({', '.join(self.allowed)})"
            )

    def check_address(self, host: str, address: Address) -> None:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:169.254.169.254 is the metadata service too
        if any(address in network for network in _ALWAYS_BLOCKED_NETWORKS):
            raise BlockedDestinationError(
                f"host '{host}' resolves to {address}, a link-local or cloud metadata address, which is blocked"
            )
        if any(fnmatch.fnmatch(str(address), pattern) for pattern in self.blocked):
            raise BlockedDestinationError(
                f"address {address} of host '{host}' is blocked by HF_CONNECTOR_BLOCKED_HOSTS"
            )


class GuardedResolver(AbstractResolver):
    """The HTTP client's resolver: every address a name resolves to passes the guard before any is dialled.
    One blocked address blocks the name, so which address gets dialled never decides the outcome."""

    def __init__(
        self, guard: DestinationGuard, inner: AbstractResolver | None = None, unchecked: Collection[str] = ()
    ) -> None:
        self._guard = guard
        self._inner = inner or ThreadedResolver()
        self._unchecked = frozenset(name.lower() for name in unchecked)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if host.lower() not in self._unchecked:  # a configured proxy: the operator's, not the modeller's
            for result in results:
                self._guard.check_address(host.lower(), ipaddress.ip_address(result["host"].split("%")[0]))
        return results

    async def close(self) -> None:
        await self._inner.close()


def literal_address(host: str) -> Address | None:
    """The address a host spells, including the decimal, octal and hex IPv4 forms (`2852039166`) that
    resolvers and proxies accept, so that none of them passes for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        pass
    if _NUMERIC_IPV4.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None
