"""A database outage answers 503 on the API and the tus endpoint, never 500.

A PostgreSQL restart (or failover) breaks every open connection and refuses
new ones for a moment. Requests that hit that moment failed with 500, which
clients treat as a bug; 503 with ``Retry-After`` tells them (tus-js-client,
Uppy, tuspy, scripts) to try again, and the retry then succeeds. Nothing is
half-recorded: every use case writes in one transaction, which the outage
rolls back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse

from api.errors import database_unavailable_response

logger = logging.getLogger(__name__)

DATABASE_ERRORS = (OperationalError, InterfaceError)
# The JSON API and tus (/api/tus/) both live here; pages keep Django's handling.
API_PREFIX = "/api/"


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


class DatabaseUnavailableMiddleware:
    """Turns a database connection failure in an API or tus view into a 503."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_ERRORS):
            return None
        if not request.path.startswith(API_PREFIX):
            return None
        close_broken_connections()
        logger.warning(
            "Database unavailable during %s %s: %s", request.method, request.path, exception
        )
        return database_unavailable_response()
