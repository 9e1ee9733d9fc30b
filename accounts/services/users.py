"""Users: create accounts from the CLI (and anything else that is not the signup form)."""

from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import transaction

from accounts.models import User
from common.exceptions import ConflictError, ValidationError


def user_create(
    *, email: str, password: str | None, is_staff: bool = False, name: str = ""
) -> User:
    """Create an active user; refuse a malformed email, a weak password or a duplicate.

    A user without a password (None) can only use API tokens, not log in.
    """
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except DjangoValidationError as exc:
        raise ValidationError("Enter a valid email address.", details={"email": email}) from exc
    if password is not None:
        try:
            validate_password(password, user=User(email=email))
        except DjangoValidationError as exc:
            raise ValidationError(
                "The password is not acceptable.", details={"password": list(exc.messages)}
            ) from exc
    if User.objects.filter(email__iexact=email).exists():
        raise ConflictError("A user with this email already exists.", details={"email": email})
    with transaction.atomic(durable=True):
        if is_staff:
            return User.objects.create_superuser(email, password, name=name)
        return User.objects.create_user(email, password, name=name)
