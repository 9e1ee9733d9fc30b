"""`manage.py create_user EMAIL [--staff] [--password-stdin | --no-password]`."""

from __future__ import annotations

import getpass
import sys

from django.core.management.base import BaseCommand, CommandError

from accounts.services.users import user_create
from common.exceptions import ApplicationError

NO_TERMINAL = (
    "There is no terminal to ask for the password. Pass it on stdin with "
    "--password-stdin (e.g. `printf '%s\\n' \"$PASSWORD\" | manage.py create_user EMAIL "
    "--password-stdin`), or create a user that signs in with API tokens only "
    "with --no-password."
)


class Command(BaseCommand):
    help = (
        "Create a user (staff with --staff). The password is asked for on the terminal, "
        "read from the first line of stdin with --password-stdin (for scripts), or not "
        "set with --no-password (API tokens only). Without a terminal, one of the two "
        "options is required."
    )

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--staff", action="store_true", help="staff and superuser")
        parser.add_argument("--name", default="")
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of stdin",
        )
        group.add_argument(
            "--no-password", action="store_true", help="API-token-only user (cannot log in)"
        )

    def handle(self, *args, email, staff, name, password_stdin, no_password, **options):
        if no_password:
            password = None
        elif password_stdin:
            line = sys.stdin.readline()
            if not line:
                raise CommandError("--password-stdin: stdin ended before a password line.")
            password = line.rstrip("\n")
        else:
            password = _prompt_password()
        try:
            user = user_create(email=email, password=password, is_staff=staff, name=name)
        except ApplicationError as exc:
            raise CommandError(f"{exc.message} {exc.details or ''}".strip()) from exc
        kind = "staff user" if user.is_staff else "user"
        self.stdout.write(f"Created {kind} {user.email} ({user.id})")


def _prompt_password() -> str:
    """Ask twice on the terminal. Without one (a script, CI, a pipe), getpass
    reads stdin, meets its end and crashed with an EOFError traceback, so
    refuse first and name the two options that work there."""
    try:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    except ValueError:  # stdin closed
        interactive = False
    if not interactive:
        raise CommandError(NO_TERMINAL)
    try:
        password = getpass.getpass("Password: ")
        again = getpass.getpass("Password (again): ")
    except EOFError as exc:  # Ctrl-D at the prompt
        raise CommandError("No password given.") from exc
    if password != again:
        raise CommandError("The passwords do not match.")
    return password
