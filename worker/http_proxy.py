"""Which proxy, if any, a call goes through: HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY, as curl reads them.

An HTTP(S) proxy is handed to the HTTP client per request; a SOCKS proxy needs the optional `socks` extra
(aiohttp-socks) and gets a connection pool of its own. A proxy the worker cannot use stops the start with
one line that names the variable; the value itself is never repeated, since it may carry a password.
"""

from __future__ import annotations

import importlib.util
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_SOCKS_SCHEMES = frozenset({"socks4", "socks4a", "socks5", "socks5h"})
_HTTP_SCHEMES = frozenset({"http", "https"})


class ProxyConfigurationError(Exception):
    """A proxy variable names a proxy the worker cannot use."""


@dataclass(frozen=True, slots=True)
class Proxy:
    variable: str
    url: str

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme.lower()

    @property
    def is_socks(self) -> bool:
        return self.scheme in _SOCKS_SCHEMES

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()


@dataclass(frozen=True, slots=True)
class ProxyRoutes:
    """The proxy for each target scheme, and the NO_PROXY list that bypasses them."""

    by_scheme: Mapping[str, Proxy] = field(default_factory=dict)
    no_proxy: str = ""

    def for_url(self, scheme: str, host: str) -> Proxy | None:
        proxy = self.by_scheme.get(scheme)
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # untyped in typeshed
        if proxy is None or (self.no_proxy and bypass(host, {"no": self.no_proxy})):
            return None
        return proxy

    @property
    def hosts(self) -> frozenset[str]:
        """The proxies' own host names: the worker dials them, whatever the destination rules say."""
        return frozenset(proxy.host for proxy in self.by_scheme.values())

    @property
    def socks(self) -> Proxy | None:
        return next((proxy for proxy in self.by_scheme.values() if proxy.is_socks), None)


def proxy_routes(environ: Mapping[str, str]) -> ProxyRoutes:
    """The proxies the environment asks for; raises `ProxyConfigurationError` for one that cannot be used."""
    found: dict[str, Proxy] = {}
    for name in ("all", "http", "https"):
        proxy = _variable(environ, f"{name}_proxy")
        if proxy is not None:
            _check(proxy)
            found[name] = proxy
    socks = [proxy for proxy in found.values() if proxy.is_socks]
    if len({proxy.url for proxy in socks}) > 1:
        raise ProxyConfigurationError(
            f"{socks[0].variable} and {socks[1].variable} name different SOCKS proxies; the worker uses one"
        )
    by_scheme = {scheme: found[scheme] for scheme in _HTTP_SCHEMES if scheme in found}
    if "all" in found:
        for scheme in _HTTP_SCHEMES:
            by_scheme.setdefault(scheme, found["all"])
    no_proxy = _variable(environ, "no_proxy")
    return ProxyRoutes(by_scheme, no_proxy.url if no_proxy else "")


def _variable(environ: Mapping[str, str], name: str) -> Proxy | None:
    for variable in (name.upper(), name):
        value = environ.get(variable, "").strip()
        if value:
            return Proxy(variable, value)
    return None


def _check(proxy: Proxy) -> None:
    if proxy.is_socks:
        if importlib.util.find_spec("aiohttp_socks") is None:
            raise ProxyConfigurationError(
                f"{proxy.variable} names a {proxy.scheme}:// proxy, which needs the 'socks' extra: "
                "pip install 'hf-camunda-connector[socks]'"
            )
    elif proxy.scheme not in _HTTP_SCHEMES or not proxy.host:
        raise ProxyConfigurationError(
            f"{proxy.variable} must be an http://, https:// or socks5:// URL with a host, such as http://proxy:3128"
        )
