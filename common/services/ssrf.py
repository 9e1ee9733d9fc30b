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


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [
        ipaddress.ip_network(n.strip(), strict=False)
        for n in settings.WEBHOOK_ALLOWED_NETWORKS or []
        if n.strip()
    ]


def _category(ip: IPAddress) -> str | None:
    """Why ``ip`` is refused, or None when it is a public address."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "not a public address"
    return None


def refusal_reason(ip: IPAddress) -> str | None:
    """A human reason why ``ip`` may not be reached, or None if it may."""
    inner = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    allowed = _allowed_networks()
    if any(ip in net for net in allowed if net.version == ip.version):
        return None
    if inner is not None:
        if any(inner in net for net in allowed if net.version == 4):
            return None
        reason = _category(inner)
        return f"::ffff:{inner} is an IPv4-mapped IPv6 address of {inner}, " + (
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
        addr = info[4][0].split("%", 1)[0]
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

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
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
