"""API tokens: create (plain value shown once), revoke, authenticate.

Only a SHA-256 of the token is stored. The token carries 256 bits of randomness,
so a fast unsalted hash is enough (a slow password hash would only add latency
to every API request) and lets authentication be a single indexed lookup.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiToken, User
from common.exceptions import ValidationError
from common.services.sql import fetch_all, model_columns
from common.services.text import clean_text

TOKEN_PREFIX = "dtk_"  # noqa: S105 - a marker, not a secret
# Shown in lists so people can tell their tokens apart; carries ~30 bits only.
DISPLAY_PREFIX_LENGTH = len(TOKEN_PREFIX) + 6
NAME_MAX_LENGTH = 100
# Writing last_used_at on every request would turn each API call into a write;
# minute resolution is what people need to spot unused tokens.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def token_name_clean(name: str) -> str:
    """The name ``token_create`` would store, or its ``ValidationError``
    (forms show it beside the field before anything is created)."""
    name = clean_text((name or "").strip(), field="name")
    if not name:
        raise ValidationError("A token needs a name.", details={"name": "required"})
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError(
            f"A token name is at most {NAME_MAX_LENGTH} characters.",
            details={"name": "too_long"},
        )
    return name


def token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """Create a named token for `user`; return it with the plain value.

    The plain value is not stored anywhere: the caller must show it now or lose it.
    """
    name = token_name_clean(name)
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, name=name, prefix=raw[:DISPLAY_PREFIX_LENGTH], token_hash=token_hash(raw)
        )
    return token, raw


def token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke a token; revoking twice keeps the first revocation time."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at", "updated_at"])
    return token


def token_authenticate(*, raw: str) -> User | None:
    """Return the active user owning the active token `raw`, or None.

    Records the last use at most once per LAST_USED_RESOLUTION with a conditional
    UPDATE, so concurrent requests with one token neither block nor race.
    """
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    # Every API request (and every tus PATCH) asks this: one prepared
    # statement written out, not a queryset compiled each time.
    users = model_columns(User, "u")
    rows = fetch_all(_token_user_sql(), [token_hash(raw)], prepare=True)
    if not rows:
        return None
    token_id, last_used_at = rows[0][:2]
    user: User = users.instance(rows[0], start=2)
    if not user.is_active:
        return None
    now = timezone.now()
    if last_used_at is None or now - last_used_at >= LAST_USED_RESOLUTION:
        stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ApiToken.objects.filter(stale, pk=token_id).update(last_used_at=now)
    return user


@functools.cache
def _token_user_sql() -> str:
    return (
        f"SELECT t.id, t.last_used_at, {model_columns(User, 'u').select} "  # noqa: S608
        f"FROM {ApiToken._meta.db_table} t JOIN {User._meta.db_table} u ON u.id = t.user_id "
        "WHERE t.token_hash = %s AND t.revoked_at IS NULL"
    )
