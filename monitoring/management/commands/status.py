"""`manage.py status`: database, broker, storage, a worker ping, and beat."""

from __future__ import annotations

import json
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from monitoring.services.health import (
    BeatStatus,
    WorkerStatus,
    beat_status,
    run_readiness_checks,
    worker_status,
)


class Command(BaseCommand):
    help = (
        "Show system status: database, broker, storage, whether a worker answers ping, "
        "and which beat holds the scheduler lock with each entry's last run."
    )

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for ping")
        parser.add_argument("--no-ping", action="store_true", help="skip the worker ping")
        parser.add_argument("--no-beat", action="store_true", help="skip the beat check")
        parser.add_argument("--queue", default="default", help="queue to send ping to")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="one JSON object on stdout"
        )

    def handle(
        self,
        *args,
        timeout: float,
        no_ping: bool,
        no_beat: bool,
        queue: str,
        as_json: bool,
        **options,
    ):
        checks = run_readiness_checks()
        failed = [name for name, result in checks.items() if result != "ok"]
        if no_ping:
            worker = WorkerStatus(state="skipped", queue=queue)
        elif "broker" in failed:
            worker = WorkerStatus(state="no answer", queue=queue, detail="broker unreachable")
        else:
            worker = worker_status(queue=queue, timeout=timeout)
        if no_beat:
            beat = BeatStatus(state="skipped")
        elif "database" in failed:
            beat = BeatStatus(state="unknown", detail="database unreachable")
        else:
            beat = beat_status()
        failed += [name for name, part in (("worker", worker), ("beat", beat)) if not part.healthy]

        if as_json:
            self._write_json(checks, worker, beat, failed)
        else:
            self._write_text(checks, worker, beat)
        if failed:
            raise CommandError(f"unhealthy: {', '.join(failed)}")

    def _write_json(self, checks, worker: WorkerStatus, beat: BeatStatus, failed) -> None:
        doc = {
            **checks,
            "worker": asdict(worker),
            "beat": asdict(beat),
            "healthy": not failed,
            "failed": failed,
        }
        self.stdout.write(json_dumps(doc))

    def _write_text(self, checks, worker: WorkerStatus, beat: BeatStatus) -> None:
        for name, result in checks.items():
            self.stdout.write(f"{name:10} {result}")
        if worker.state == "ok":
            self.stdout.write(f"{'worker':10} ok ({worker.hostname}, queue {worker.queue})")
        elif worker.state == "cannot check":
            self.stdout.write(f"{'worker':10} cannot check a worker: {worker.detail}")
        else:
            self.stdout.write(f"{'worker':10} {worker.detail or worker.state}")
        line = f"{'beat':10} {beat.state}"
        if beat.holder:
            line += f" ({beat.holder}"
            line += f", last tick {beat.ticked_at:%Y-%m-%d %H:%M:%S}Z)" if beat.ticked_at else ")"
        if beat.detail:
            line += f": {beat.detail}"
        self.stdout.write(line)
        width = max((len(name) for name in beat.entries), default=0)
        for name, last_run_at in beat.entries.items():
            when = f"{last_run_at:%Y-%m-%d %H:%M:%S}Z" if last_run_at else "never"
            failing = beat.failing.get(name)
            extra = (
                f"  FAILING since {failing['since']} x{failing['attempts']}: {failing['error']}"
                if failing
                else ""
            )
            self.stdout.write(f"  {name:{width}} last run {when}{extra}")


def json_dumps(doc: dict) -> str:
    return json.dumps(doc, cls=DjangoJSONEncoder, indent=2)
