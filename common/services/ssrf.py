"""SSRF guard for webhook targets.

A target host is resolved once, every address is vetted, and the connection
goes to a vetted address (``SafeNetworkBackend``), so a DNS answer that changes
between the check and the connect (rebinding) cannot reach an internal
service. httpcore still knows the URL's host name, so the Host header, SNI and
certificate check stay those of the URL.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpcore
from django.conf import settings

from common.exceptions import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance metadata services of the big clouds (AWS/GCP/Azure/OpenStack,
# AWS over IPv6, Alibaba, Azure wireserver). Named separately for a clear reason.
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
    ipaddress.ip_address("168.63.129.16"),
}


class UnsafeTargetError(Exception):
    """The target resolves to an address webhooks may not reach."""


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """``WEBHOOK_ALLOWED_NETWORKS`` as networks: what this configuration lets
    through the guard (also shown on the endpoint form, so it says what is refused here)."""
    return [
        ipaddress.ip_network(n.strip(), strict=False)
        for n in settings.WEBHOOK_ALLOWED_NETWORKS or []
        if n.strip()
    ]


# IPv6 is judged from these tables, not from ``is_global``/``is_private``,
# whose answers changed between Python releases (3.12.4, 3.13) and still
# count 6to4 and NAT64 addresses as global. Only global unicast (2000::/3)
# can be public, minus the blocks IANA's special-purpose registry marks as
# not globally reachable.
_IPV6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_IPV6_NOT_GLOBAL = (
    ipaddress.ip_network("2001::/23"),  # IETF protocol assignments, Teredo included
    ipaddress.ip_network("2001:db8::/32"),  # documentation
    ipaddress.ip_network("3fff::/20"),  # documentation
    ipaddress.ip_network("3ffe::/16"),  # the former 6bone, returned
)
# Inside 2001::/23 but globally reachable (IANA registry).
_IPV6_GLOBAL_EXCEPTIONS = (
    ipaddress.ip_network("2001:1::1/128"),
    ipaddress.ip_network("2001:1::2/128"),
    ipaddress.ip_network("2001:3::/32"),
    ipaddress.ip_network("2001:4:112::/48"),
    ipaddress.ip_network("2001:20::/28"),
    ipaddress.ip_network("2001:30::/28"),
)
_IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")


def embedded_ipv4(ip: IPAddress) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address carries, with the name of the form.

    Packets to these addresses end up at the IPv4 address (directly for
    IPv4-mapped, through a relay or translator for the others), so the guard
    judges them by it.
    """
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _IPV4_MAPPED:
        return "an IPv4-mapped IPv6 address", low32
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # not :: or ::1
        return "an IPv4-compatible IPv6 address", low32
    if ip in _NAT64_WELL_KNOWN:
        return "a NAT64 address", low32
    if ip in _SIX_TO_FOUR:
        return "a 6to4 address", ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return None


def _category(ip: IPAddress) -> str | None:
    """Why ``ip`` is refused, or None when it is a public address."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv6Address):
        return _ipv6_category(ip)
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "not a public address"
    return None


def _ipv6_category(ip: ipaddress.IPv6Address) -> str | None:
    if ip.is_site_local:
        return "a site-local address"
    if ip in ipaddress.ip_network("fc00::/7"):
        return "a private address"
    if ip in _NAT64_LOCAL:
        return "a local-use NAT64 address"
    if ip in _TEREDO:
        server, client = ip.teredo  # type: ignore[misc]
        return f"a Teredo address (server {server}, client {client}), not a public address"
    if ip not in _IPV6_GLOBAL_UNICAST:
        return "not a public address"
    if any(ip in net for net in _IPV6_NOT_GLOBAL) and not any(
        ip in net for net in _IPV6_GLOBAL_EXCEPTIONS
    ):
        return "not a public address"
    return None


def _allowed(ip: IPAddress, allowed: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    return any(ip in net for net in allowed if net.version == ip.version)


def refusal_reason(ip: IPAddress) -> str | None:
    """A human reason why ``ip`` may not be reached, or None if it may.

    An address on ``WEBHOOK_ALLOWED_NETWORKS`` passes. An IPv6 address that
    embeds an IPv4 address (IPv4-mapped or -compatible, 6to4, NAT64) is
    judged as that IPv4 address in both directions: refused when it would be,
    allowed when it is on the list (so Dev/Test's ``127.0.0.0/8`` also allows
    ``::ffff:127.0.0.1`` and ``2002:7f00:1::1``).
    """
    allowed = allowed_networks()
    if _allowed(ip, allowed):
        return None
    embedded = embedded_ipv4(ip)
    if embedded is not None:
        form, inner = embedded
        if _allowed(inner, allowed):
            return None
        reason = _category(inner)
        if reason is None and (ip in _NAT64_WELL_KNOWN or ip in _SIX_TO_FOUR):
            # A public IPv4 behind NAT64 (what DNS64 answers on an IPv6-only
            # host) or 6to4 is as reachable as the IPv4 address itself.
            return None
        shown = f"::ffff:{inner}" if ip in _IPV4_MAPPED else str(ip)
        return f"{shown} is {form} of {inner}, " + (
            reason or "an address that must be written as IPv4"
        )
    reason = _category(ip)
    return f"{ip} is {reason}" if reason else None


def resolve_vetted(host: str, port: int) -> list[str]:
    """Resolve ``host`` once and return its addresses, all vetted.

    Any refused address refuses the host: a name that mixes public and
    internal answers is exactly what a rebinding attack looks like.
    """
    bare = host.strip("[]")
    try:
        infos = socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTargetError(f"refused: {host} does not resolve ({exc})") from exc
    addresses: list[str] = []
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]
        if addr not in addresses:
            addresses.append(addr)
    if not addresses:
        raise UnsafeTargetError(f"refused: {host} does not resolve")
    for addr in addresses:
        reason = refusal_reason(ipaddress.ip_address(addr))
        if reason:
            literal = bare == addr
            prefix = "" if literal else f"{host} resolves to {addr}; "
            raise UnsafeTargetError(f"refused: {prefix}{reason}")
    return addresses


def check_url(url: str) -> None:
    """Raise ``UnsafeTargetError`` unless ``url`` is an http(s) URL to a vetted host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTargetError(f"refused: invalid URL ({exc})") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeTargetError("refused: only http and https URLs are allowed")
    if not parts.hostname:
        raise UnsafeTargetError("refused: the URL has no host")
    if parts.username or parts.password:
        raise UnsafeTargetError("refused: credentials in the URL are not allowed")
    resolve_vetted(parts.hostname, port or (443 if parts.scheme == "https" else 80))


def validate_webhook_url(url: str) -> None:
    """``check_url`` as the clear 4xx error an endpoint form or API returns."""
    try:
        check_url(url)
    except UnsafeTargetError as exc:
        raise ValidationError(str(exc), details={"field": "url"}) from exc


class SafeNetworkBackend(httpcore.SyncBackend):
    """Connects only to vetted addresses of the requested host."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = resolve_vetted(host, port)
        last_exc: Exception | None = None
        for addr in addresses:
            try:
                return super().connect_tcp(
                    addr,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_exc = exc
        assert last_exc is not None
        raise last_exc
