"""The lock-out page of every sign-in form (the portal's and the admin's).

The authentication backend (``accounts.backends``) cannot answer a request;
it leaves the lock-out on it. Whichever view ran the sign-in, this turns its
answer into 429 and the page that says why and for how long.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.backends import request_lockout

LOCKOUT_TEMPLATE = "frontend/accounts/locked_out.html"


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
