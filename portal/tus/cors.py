"""CORS for the tus endpoint: browsers on ``CORS_ALLOWED_ORIGINS`` may use it.

Every tus request and response header is allowed and exposed (tus-js-client
reads ``Location``, ``Upload-Offset``, ... from cross-origin responses), and
credentials are allowed so a logged-in browser session works as well as a
bearer token. Other origins get no CORS headers at all, so browsers refuse.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers

from portal.tus.headers import REQUEST_HEADERS, RESPONSE_HEADERS

ALLOWED_METHODS = ("POST", "HEAD", "PATCH", "DELETE", "OPTIONS")
PREFLIGHT_MAX_AGE = 86400


def origin_allowed(origin: str) -> bool:
    allowed = [o.strip().rstrip("/") for o in (settings.CORS_ALLOWED_ORIGINS or []) if o.strip()]
    return bool(origin) and ("*" in allowed or origin.rstrip("/") in allowed)


def apply(request: HttpRequest, response: HttpResponse) -> None:
    """Add CORS headers for an allowed ``Origin``; answer preflights fully."""
    patch_vary_headers(response, ["Origin"])
    origin = request.headers.get("Origin", "")
    if not origin_allowed(origin):
        return
    response["Access-Control-Allow-Origin"] = origin
    response["Access-Control-Allow-Credentials"] = "true"
    response["Access-Control-Expose-Headers"] = ", ".join(RESPONSE_HEADERS)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        response["Access-Control-Allow-Methods"] = ", ".join(ALLOWED_METHODS)
        response["Access-Control-Allow-Headers"] = ", ".join(REQUEST_HEADERS)
        response["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
