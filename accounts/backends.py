"""The one authentication backend: Django's password check behind the sign-in throttle.

Every password sign-in goes through ``django.contrib.auth.authenticate`` —
the portal's ``/login/``, the admin's login, anything added later — and so
through this backend, which is the only one configured
(``AUTHENTICATION_BACKENDS``): no other backend can check a password the
throttle has not counted.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from accounts.client_address import client_address, throttle_address
from accounts.emails import normalize_email
from accounts.models import User
from accounts.services.sign_in_throttle import (
    SignInLockout,
    sign_in_attempt_count,
    sign_in_attempts_clear,
)
from common.exceptions import ApplicationError

# Where a refused or locking attempt leaves its lock-out on the request, for
# the middleware that answers with the lock-out page (frontend.middleware).
LOCKOUT_ATTRIBUTE = "sign_in_lockout"


def request_lockout(request: HttpRequest) -> SignInLockout | None:
    """The lock-out a sign-in on ``request`` ran into, if any."""
    return getattr(request, LOCKOUT_ATTRIBUTE, None)


class ThrottledModelBackend(ModelBackend):
    """``ModelBackend`` whose password check is counted first, per (email, address).

    The email is normalised (``accounts.emails``) so every spelling of one
    mailbox finds its account and shares its count. A request past the limit
    is refused without checking the password: ``PermissionDenied`` stops
    ``authenticate`` (no later backend is asked) and the request carries the
    lock-out, so the sign-in page answers 429 with it. Without a request (code
    calling ``authenticate`` directly, not a client) there is no address to
    count and nothing is throttled.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if username is None:
            username = kwargs.get(User.USERNAME_FIELD)
        if username is None or password is None:
            return None
        try:
            email = normalize_email(username)
        except ApplicationError:
            return None  # no account can have this address, and no password is checked
        if request is None:
            return super().authenticate(request, username=email, password=password)
        address = throttle_address(client_address(request))
        attempt = sign_in_attempt_count(username=email, address=address)
        if not attempt.allowed:
            setattr(request, LOCKOUT_ATTRIBUTE, attempt.lockout)
            raise PermissionDenied("Too many failed sign-ins from this address.")
        user = super().authenticate(request, username=email, password=password)
        if user is not None:
            sign_in_attempts_clear(username=email, address=address)
        elif attempt.last_allowed:
            # This failure used the last attempt: say so now, not at the next one.
            setattr(request, LOCKOUT_ATTRIBUTE, attempt.lockout)
        return user
