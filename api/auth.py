"""Who is calling: a bearer API token, or the browser's logged-in session.

Shared by the ninja API and plain Django views (the tus endpoint), so both
accept exactly the same credentials.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from ninja.security import HttpBearer

from accounts.http import AuthenticatedHttpRequest
from accounts.models import User
from accounts.services.tokens import token_authenticate


def _csrf_protected_view(request: HttpRequest) -> HttpResponse:  # pragma: no cover - never called
    return HttpResponse()


def _csrf_ok(request: HttpRequest) -> bool:
    # The API views are csrf_exempt (a bearer token is not ambient authority), so
    # a session caller's CSRF token is checked here, with Django's own rules.
    request.csrf_processing_done = False  # type: ignore[attr-defined]
    middleware = CsrfViewMiddleware(_csrf_protected_view)
    return middleware.process_view(request, _csrf_protected_view, (), {}) is None


def authenticate_request(request: HttpRequest) -> User | None:
    """Return the calling user, or None if the request is not authenticated.

    - `Authorization: Bearer <token>`: the token decides; a bad token is never
      rescued by a session cookie sent alongside it.
    - otherwise the session user, provided a state-changing request (anything
      but GET/HEAD/OPTIONS/TRACE) passes Django's CSRF check; a session request
      that fails CSRF is treated as unauthenticated (None).
    """
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return token_authenticate(raw=credentials.strip())
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if not _csrf_ok(request):
        return None
    return user


class ApiRequest(AuthenticatedHttpRequest):
    """The request an API view receives: every operation sits behind ``ApiAuth``.

    ninja sets ``request.auth`` to what ``ApiAuth`` returned (the caller) and
    runs the view only when that is a user, so ``auth`` is never None there.
    An annotation only, like its base.
    """

    auth: User


class ApiAuth(HttpBearer):
    """ninja security class: documented as HTTP bearer, also accepts the session."""

    def __call__(self, request: HttpRequest) -> Any:
        user = authenticate_request(request)
        if user is not None:
            request.user = user
        return user

    def authenticate(self, request: HttpRequest, token: str) -> Any:  # pragma: no cover
        return token_authenticate(raw=token)
