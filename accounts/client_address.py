"""Which address a request comes from, as far as it can be trusted.

``REMOTE_ADDR`` is the peer of the TCP connection. Behind the TLS proxy the
operations guide describes, that is the proxy for every client, so counting
failed sign-ins per ``REMOTE_ADDR`` let anyone lock any known account out for
everyone. ``X-Forwarded-For`` names the client, but any client can send one,
so it is read only when the peer is one of ``TRUSTED_PROXIES``: then the
header is walked from its right end (the entry the nearest proxy appended)
past the hops that are themselves trusted proxies, and the first other entry
is the client. Entries further left were written by the client and are never
believed.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# An IPv6 subscriber is handed a /64 at least: counting per single address
# would give one attacker 2**64 fresh addresses.
IPV6_PREFIX = 64


@lru_cache(maxsize=8)
def trusted_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """``TRUSTED_PROXIES`` parsed; a malformed entry is a configuration error, not ignored."""
    networks = []
    for entry in entries:
        if not entry.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"TRUSTED_PROXIES: {entry.strip()!r} is not an IP address or network."
            ) from exc
    return tuple(networks)


def parse_address(text: str) -> Address | None:
    """An address from a header or ``REMOTE_ADDR``, or None when it is none.

    Accepts what proxies write: ``203.0.113.7``, ``203.0.113.7:52311``,
    ``2001:db8::1`` and ``[2001:db8::1]:443``. An IPv4-mapped IPv6 address
    (``::ffff:203.0.113.7``, a dual-stack socket's view) is its IPv4 address.
    """
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address in net for net in networks if net.version == address.version)


def client_address(request: HttpRequest) -> str:
    """The client's IP address: ``REMOTE_ADDR``, or behind a trusted proxy the
    nearest untrusted hop of ``X-Forwarded-For``.

    A peer that is not a parseable address (a test client, a Unix socket) is
    returned as it is, so it still counts as one distinct source.
    """
    remote_text = request.META.get("REMOTE_ADDR", "") or ""
    remote = parse_address(remote_text)
    if remote is None:
        return remote_text or "unknown"
    networks = trusted_networks(tuple(settings.TRUSTED_PROXIES or ()))
    if not _is_trusted(remote, networks):
        return str(remote)
    client = remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop_text in reversed(forwarded.split(",") if forwarded.strip() else []):
        hop = parse_address(hop_text)
        if hop is None:
            # A trusted proxy wrote something that is no address: nothing to
            # its left can be believed either, so the last trusted hop stands.
            break
        client = hop
        if not _is_trusted(hop, networks):
            break
    return str(client)


def throttle_address(address: str) -> str:
    """The key failed sign-ins are counted under: the IPv4 address, or the IPv6 /64."""
    parsed = parse_address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, IPV6_PREFIX), strict=False))
    return str(parsed) if parsed is not None else address[:64]
