"""`manage.py create_user EMAIL [--staff] [--password-stdin | --no-password]`."""

from __future__ import annotations

import getpass
import sys

from django.core.management.base import BaseCommand, CommandError

from accounts.services.users import user_create
from common.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Create a user (staff with --staff). Reads the password from a prompt or stdin."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--staff", action="store_true", help="staff and superuser")
        parser.add_argument("--name", default="")
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--password-stdin", action="store_true", help="read the password from stdin"
        )
        group.add_argument(
            "--no-password", action="store_true", help="API-token-only user (cannot log in)"
        )

    def handle(self, *args, email, staff, name, password_stdin, no_password, **options):
        if no_password:
            password = None
        elif password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Password (again): "):
                raise CommandError("The passwords do not match.")
        try:
            user = user_create(email=email, password=password, is_staff=staff, name=name)
        except ApplicationError as exc:
            raise CommandError(f"{exc.message} {exc.details or ''}".strip()) from exc
        kind = "staff user" if user.is_staff else "user"
        self.stdout.write(f"Created {kind} {user.email} ({user.id})")
