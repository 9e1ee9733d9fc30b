"""Run the TTL cleanup now: ``manage.py cleanup_uploads [--ttl-hours N] [--once]``.

Stored files go by their own ``expires_at``; ``--ttl-hours`` is the age rule
for records that have none (failed and abandoned uploads).
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.management.progress import Progress
from portal.services.cleanup import CLEANUP_BATCH_SIZE, cleanup_expired_upload_files


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a whole number.") from None
    if number < 1:
        raise CommandError(f"{value!r} must be at least 1.")
    return number


class Command(BaseCommand):
    help = (
        "Delete upload files past their expires_at now (objects, rows, events); records "
        "without one (failed, abandoned) once older than FILE_UPLOAD_TTL_HOURS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--ttl-hours",
            type=str,
            default=None,
            help="Age in hours after which records without an expiry (failed, abandoned) are "
            "deleted (default: FILE_UPLOAD_TTL_HOURS).",
        )
        parser.add_argument(
            "--batch-size",
            type=str,
            default=str(CLEANUP_BATCH_SIZE),
            help=f"Files per batch (default {CLEANUP_BATCH_SIZE}, as the periodic task).",
        )
        parser.add_argument(
            "--once", action="store_true", help="Run a single batch, like one task run."
        )

    def handle(self, *args, **options) -> None:
        ttl_hours = positive_int(options["ttl_hours"] or str(settings.FILE_UPLOAD_TTL_HOURS))
        batch_size = positive_int(options["batch_size"])
        total = 0
        progress = Progress(self.stdout)
        while True:
            result = cleanup_expired_upload_files(ttl_hours=ttl_hours, batch_size=batch_size)
            total += result.deleted
            progress.update(f"deleted {total} expired files, {result.remaining} remaining")
            if options["once"] or result.remaining == 0 or result.deleted == 0:
                break
        progress.finish()
        left = f" {result.remaining} remaining." if result.remaining else ""
        self.stdout.write(self.style.SUCCESS(f"Done: {total} expired files deleted.{left}"))
