"""The request type of views that only run for a signed-in user."""

from __future__ import annotations

from django.http import HttpRequest

from accounts.models import User


class AuthenticatedHttpRequest(HttpRequest):
    """An ``HttpRequest`` whose ``user`` is a real ``User``, never ``AnonymousUser``.

    Only an annotation: Django never builds one. Views behind ``login_required``
    (or the API's authentication) take it, so passing ``request.user`` to a
    service that needs an owner type-checks without a cast at every call.
    """

    user: User
