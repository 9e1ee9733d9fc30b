from __future__ import annotations

from typing import ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models

from accounts.emails import normalize_email
from common.models import BaseModel


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    @classmethod
    def normalize_email(cls, email: str | None) -> str:
        """``accounts.emails.normalize_email``: the one spelling, or its ``ValidationError``.

        Django's own only lowercases the domain. Code that reaches users
        through ``get_user_model()`` (and may not import accounts) calls this.
        """
        return normalize_email(email or "")

    def _create(self, email: str, password: str | None, **extra) -> User:
        if not email:
            raise ValueError("An email address is required.")
        # Every creation (the services, Django's createsuperuser, tests) stores
        # the one spelling, so the unique constraint on email stops twins.
        user = self.model(email=self.normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra) -> User:
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create(email, password, **extra)


class User(BaseModel, AbstractBaseUser, PermissionsMixin):
    """A person or program owner; logs in with an email address."""

    email = models.EmailField(unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(auto_now_add=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email


class ApiToken(BaseModel):
    """A named bearer credential for programs; only a hash of the secret is kept.

    The plain value is shown once, at creation. `prefix` is the first characters of
    the secret so people can tell their tokens apart without the secret itself.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class SignInThrottle(BaseModel):
    """Password checks of one (account, address) pair within its cool-off window.

    ``attempts`` is raised by one atomic upsert *before* each password is
    checked (``accounts.services.sign_in_throttle``), so parallel requests
    cannot all pass a check made before any of them was counted. A success
    deletes the row; an expired row starts over at its next attempt and is
    deleted by the hourly prune. ``username`` is the normalised email as
    typed, whether or not such an account exists (so the answer does not tell
    whether it does); ``address`` is the client's IP address, or its /64 for
    IPv6 (one subscriber's whole allocation).
    """

    username = models.CharField(max_length=254)
    address = models.CharField(max_length=64)
    attempts = models.PositiveIntegerField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["username", "address"], name="sign_in_throttle_username_address"
            )
        ]

    def __str__(self) -> str:
        return f"{self.username} from {self.address}: {self.attempts}"
