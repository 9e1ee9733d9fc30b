"""Standard Webhooks signing (https://www.standardwebhooks.com/).

The signature is ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed
with the base64-decoded part of a ``whsec_`` secret; several signatures (one
per active secret during a rotation) are joined by exactly one space.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format prefix, not a secret)


def generate_secret() -> str:
    """A new signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(raw + "=" * (-len(raw) % 4))


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,…`` signature of the exact bytes that will be sent."""
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(*, secrets: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(sign(secret=s, msg_id=msg_id, timestamp=timestamp, body=body) for s in secrets)


def signing_secrets(
    *, secret: str, previous_secrets: list[dict[str, str]], now: dt.datetime
) -> list[str]:
    """The current secret plus rotated-out ones still inside their overlap."""
    active = [secret]
    for entry in previous_secrets or []:
        expires_at = dt.datetime.fromisoformat(entry["expires_at"])
        if expires_at > now and entry["secret"] not in active:
            active.append(entry["secret"])
    return active
