"""Users: create accounts from the CLI (and anything else that is not the signup form)."""

from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from accounts.emails import normalize_email
from accounts.models import User
from common.exceptions import ConflictError, ValidationError


def user_create(
    *, email: str, password: str | None, is_staff: bool = False, name: str = ""
) -> User:
    """Create an active user; refuse a malformed email, a weak password or a duplicate.

    The address is stored in its one spelling (``normalize_email``), so any
    other spelling of an existing account's mailbox is a duplicate. A user
    without a password (None) can only use API tokens, not log in.
    """
    email = normalize_email(email or "")
    if password is not None:
        try:
            validate_password(password, user=User(email=email))
        except DjangoValidationError as exc:
            raise ValidationError(
                "The password is not acceptable.", details={"password": list(exc.messages)}
            ) from exc
    duplicate = ConflictError("A user with this email already exists.", details={"email": email})
    if User.objects.filter(email=email).exists():
        raise duplicate
    try:
        with transaction.atomic(durable=True):
            if is_staff:
                return User.objects.create_superuser(email, password, name=name)
            return User.objects.create_user(email, password, name=name)
    except IntegrityError as exc:  # the same address registered a moment ago
        raise duplicate from exc
