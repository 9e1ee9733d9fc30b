"""`manage.py status`: readiness of database, broker and storage, and a worker ping."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from common.services.health import run_readiness_checks


class Command(BaseCommand):
    help = "Show system status: database, broker, storage, and whether a worker answers ping."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for ping")
        parser.add_argument("--no-ping", action="store_true", help="skip the worker ping")
        parser.add_argument("--queue", default="default", help="queue to send ping to")

    def handle(self, *args, timeout: float, no_ping: bool, queue: str, **options):
        checks = run_readiness_checks()
        for name, result in checks.items():
            self.stdout.write(f"{name:10} {result}")
        failed = [name for name, result in checks.items() if result != "ok"]
        if not no_ping and "broker" not in failed:
            from common.tasks import ping

            try:
                answer = ping.apply_async(queue=queue).get(timeout=timeout)
                self.stdout.write(f"{'worker':10} ok ({answer['hostname']}, queue {queue})")
            except Exception as exc:
                self.stdout.write(f"{'worker':10} no answer within {timeout:g}s ({exc!r})")
                failed.append("worker")
        if failed:
            raise CommandError(f"unhealthy: {', '.join(failed)}")
