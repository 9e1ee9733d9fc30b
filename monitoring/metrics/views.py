"""``/metrics``: who may scrape, then the body (``monitoring.metrics.exposition``)."""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from monitoring.metrics.exposition import metrics_render

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


def _address_allowed(request: HttpRequest) -> bool:
    """The peer address (REMOTE_ADDR, never a forwarded header a client can write)."""
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    networks = _networks(tuple(settings.METRICS_ALLOWED_NETWORKS or ()))
    return any(address in net for net in networks if net.version == address.version)


def _bearer(request: HttpRequest) -> str:
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """A configured ``METRICS_TOKEN`` is required, else the peer must be in the allow-list."""
    token = settings.METRICS_TOKEN or ""
    if token:
        given = _bearer(request)
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            response = HttpResponse("A valid bearer token is required.\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    elif not _address_allowed(request):
        return HttpResponse("Forbidden.\n", status=403, content_type="text/plain")
    # The classic text format every Prometheus reads (our names are plain ASCII).
    return HttpResponse(metrics_render(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
