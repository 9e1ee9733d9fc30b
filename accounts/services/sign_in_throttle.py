"""Failed sign-ins per (account, address): counted before the password is checked.

django-axes, used before, read the lock before checking a password and
recorded the failure after it, so a burst of parallel requests all passed the
read before any failure was written: 50 wrong passwords sent at once were all
checked, and a right one at the end of the burst signed in. Here the attempt
is counted first, by one ``INSERT … ON CONFLICT DO UPDATE … RETURNING``
statement: PostgreSQL serialises the statements on the pair's row, so of N
parallel attempts each sees a different count, and only the first
``AXES_FAILURE_LIMIT`` reach the password check. A success deletes the row;
a failure stays counted.

The window: each counted attempt below the limit moves the row's expiry to
``AXES_COOLOFF_MINUTES`` from now (failures spread wider than that never add
up); the attempt that reaches the limit fixes it, and attempts refused
afterwards do not move it, so a lock-out ends that long after it began
however often the pair keeps trying. An expired row starts again at 1.
(The setting names are django-axes' so deployments keep their values.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone
from uuid_utils.compat import uuid7

from accounts.models import SignInThrottle

# The table is SignInThrottle's (a test checks the name).
_COUNT_SQL = """
INSERT INTO accounts_signinthrottle AS t
    (id, created_at, updated_at, username, address, attempts, expires_at)
VALUES (%(id)s, %(now)s, %(now)s, %(username)s, %(address)s, 1, %(until)s)
ON CONFLICT (username, address) DO UPDATE SET
    attempts = CASE WHEN t.expires_at <= %(now)s THEN 1 ELSE t.attempts + 1 END,
    expires_at = CASE
        WHEN t.expires_at <= %(now)s OR t.attempts < %(limit)s THEN %(until)s
        ELSE t.expires_at
    END,
    updated_at = %(now)s
RETURNING attempts, expires_at
"""


@dataclass(frozen=True)
class SignInLockout:
    """Why a sign-in was refused, for the page that says so."""

    failure_limit: int
    until: datetime

    def minutes_left(self, *, now: datetime | None = None) -> int:
        """Whole minutes until the lock-out ends, rounded up (never "0 minutes")."""
        left = (self.until - (now or timezone.now())).total_seconds()
        return max(1, math.ceil(left / 60))


@dataclass(frozen=True)
class SignInAttempt:
    """One counted attempt: its number within the window, and the limit."""

    number: int
    failure_limit: int
    expires_at: datetime

    @property
    def allowed(self) -> bool:
        """Whether this attempt may have its password checked."""
        return self.number <= self.failure_limit

    @property
    def last_allowed(self) -> bool:
        """Whether this is the last attempt checked: failing it locks the pair out."""
        return self.number >= self.failure_limit

    @property
    def lockout(self) -> SignInLockout:
        return SignInLockout(failure_limit=self.failure_limit, until=self.expires_at)


def failure_limit() -> int:
    return max(1, int(settings.AXES_FAILURE_LIMIT))


def cooloff() -> timedelta:
    return timedelta(minutes=int(settings.AXES_COOLOFF_MINUTES))


def sign_in_attempt_count(*, username: str, address: str) -> SignInAttempt:
    """Count one attempt of ``username`` from ``address`` before its password is checked.

    Views run in autocommit (no ``ATOMIC_REQUESTS``), so the count is
    committed by this one statement and every other request sees it at once;
    called inside a transaction, parallel attempts on the pair wait on its row
    until that transaction ends, which still lets only one count at a time.
    """
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _COUNT_SQL,
            {
                "id": uuid7(),
                "now": now,
                "username": username,
                "address": address,
                "until": now + cooloff(),
                "limit": failure_limit(),
            },
        )
        number, expires_at = cursor.fetchone()
    return SignInAttempt(number=number, failure_limit=failure_limit(), expires_at=expires_at)


def sign_in_attempts_clear(*, username: str, address: str) -> None:
    """A right password from ``address``: its count for ``username`` starts over."""
    SignInThrottle.objects.filter(username=username, address=address).delete()


def sign_in_throttles_prune() -> int:
    """Delete the rows whose window ended; return how many went."""
    deleted, _ = SignInThrottle.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
