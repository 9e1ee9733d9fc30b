"""The portal's middleware: the lock-out page, the reader's time zone, and
a page for a form's address opened on its own (405).

The lock-out page of every sign-in form (the portal's and the admin's): the
authentication backend (``accounts.backends``) cannot answer a request;
it leaves the lock-out on it. Whichever view ran the sign-in, this turns its
answer into 429 and the page that says why and for how long.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.backends import request_lockout
from frontend.views.errors import method_not_allowed

LOCKOUT_TEMPLATE = "frontend/accounts/locked_out.html"
API_PREFIX = "/api/"


class SignInLockoutMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        lockout = request_lockout(request)
        if lockout is None:
            return response
        return render(
            request,
            LOCKOUT_TEMPLATE,
            {"failure_limit": lockout.failure_limit, "minutes_left": lockout.minutes_left()},
            status=429,
        )


# The browser's IANA zone, written by portal.js (Intl.DateTimeFormat) on every
# page it runs on; see docs/portal.md, "Times".
TIME_ZONE_COOKIE = "doorito_tz"
# Area/Location names (and "UTC"): no paths, no dots, nothing a file lookup could misread.
ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9][A-Za-z0-9_+\-]*){0,2}")


def zone_from_name(name: str | None) -> ZoneInfo | None:
    """The zone a cookie names, or None for anything that is not a known IANA zone."""
    if not name or len(name) > 64 or not ZONE_NAME.fullmatch(name):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


class BrowserTimeZoneMiddleware:
    """Pages show times in the reader's own zone: the one their browser reports.

    Without the cookie (the very first page, a browser without JavaScript, a
    program) times stay in UTC, and every page says which zone it uses.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = zone_from_name(request.COOKIES.get(TIME_ZONE_COOKIE))
        # The API speaks UTC to every caller, a browser's script included.
        if zone is None or request.path.startswith(API_PREFIX):
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


class MethodNotAllowedPageMiddleware:
    """Django has no ``handler405``: a view limited to POST answers a GET with
    an empty 405, which a browser shows as a blank page. Outside ``/api/``
    (whose clients read the status) a GET gets the portal's page instead."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code == 405
            and request.method == "GET"
            and not request.path.startswith(API_PREFIX)
            and not response.content
        ):
            return method_not_allowed(request, response)
        return response
