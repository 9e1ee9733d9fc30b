"""The one answer to a database outage: 503 with ``Retry-After``, never 500.

A PostgreSQL restart (or failover) breaks every open connection and refuses
new ones for a moment. Requests that hit that moment failed with 500, which
clients treat as a bug; 503 with ``Retry-After`` tells them (tus-js-client,
Uppy, tuspy, scripts, browsers) to try again, and the retry then succeeds.
Nothing is half-recorded: every use case writes in one transaction, which
the outage rolls back.

Used by the middleware below (every Django view), by the JSON API's
exception handler (django-ninja answers its views' exceptions itself, so the
middleware never sees those) and by the tus views (which add the protocol's
headers to it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse

from common.exceptions import ApplicationError

logger = logging.getLogger(__name__)

DATABASE_ERRORS = (OperationalError, InterfaceError)
# A database restart takes a second or two; clients retry after this.
RETRY_AFTER_SECONDS = 2

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Doorito is busy for a moment</title></head>
<body><main><h1>Doorito is busy for a moment</h1>
<p>The database is unavailable for a moment; nothing was changed.
Reload this page in a few seconds.</p></main></body></html>
"""


class DatabaseUnavailableError(ApplicationError):
    code = "database_unavailable"
    status_code = 503
    default_message = (
        "The database is unavailable for a moment; nothing was changed. Retry shortly."
    )


def close_broken_connections() -> None:
    """Drop this thread's connections so the next request connects afresh.

    Django would also notice a broken connection at the end of the request
    (``errors_occurred``), but a persistent connection (``CONN_MAX_AGE``)
    that died between requests is better closed at once.
    """
    for conn in connections.all(initialized_only=True):
        try:
            conn.close()
        except Exception:
            logger.debug("Closing a broken connection failed", exc_info=True)


def _wants_html(request: HttpRequest) -> bool:
    if request.path.startswith("/api/"):
        return False
    return "text/html" in request.headers.get("Accept", "")


def database_unavailable(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """Log, drop the broken connections, and answer 503 (a page for browsers, else JSON)."""
    close_broken_connections()
    logger.warning("Database unavailable during %s %s: %s", request.method, request.path, exc)
    error = DatabaseUnavailableError()
    if _wants_html(request):
        response: HttpResponse = HttpResponse(_PAGE, status=503)
    else:
        response = JsonResponse(error.as_dict(), status=error.status_code)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware:
    """Turns a database connection failure in any view into the outage answer."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_ERRORS):
            return None
        return database_unavailable(request, exception)
