"""Reads of users and API tokens (no writes here)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from accounts.emails import normalize_email
from accounts.models import ApiToken, User
from common.exceptions import NotFoundError


def user_get_by_email(*, email: str) -> User:
    """The account of the mailbox ``email`` names, however it is spelled.

    A malformed address raises ``normalize_email``'s ``ValidationError``; no
    such account raises ``NotFoundError``.
    """
    normalized = normalize_email(email)
    try:
        return User.objects.get(email=normalized)
    except User.DoesNotExist as exc:
        raise NotFoundError(f"No user with email {normalized!r}.") from exc


def token_list(*, user: User) -> QuerySet[ApiToken]:
    """A user's own tokens, newest first; revoked ones stay listed so their use can be traced."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


def token_get(*, user: User, token_id: Any) -> ApiToken:
    """One of the user's own tokens; anyone else's is "not found", not "forbidden"."""
    try:
        return token_list(user=user).get(pk=token_id)
    except (ApiToken.DoesNotExist, ValueError, ValidationError) as exc:
        raise NotFoundError("No such token.") from exc
