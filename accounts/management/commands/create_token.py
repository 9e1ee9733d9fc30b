"""`manage.py create_token EMAIL NAME`: print a new API token once."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import user_get_by_email
from accounts.services.tokens import token_create
from common.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Create a named API token for a user and print it (it is not stored in plain)."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("name", help="what the token is for, e.g. 'ci' or 'runner-1'")

    def handle(self, *args, email, name, **options):
        try:
            user = user_get_by_email(email=email)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if not user.is_active:
            raise CommandError(f"User {user.email} is inactive.")
        try:
            token, raw = token_create(user=user, name=name)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        # The token alone on stdout, so `TOKEN=$(manage.py create_token ...)` works.
        self.stderr.write(f"Token {token.name!r} ({token.prefix}…) for {user.email}; shown once:")
        self.stdout.write(raw)
