"""TTL cleanup benchmark: files deleted per second by the cleanup task.

Baseline (same run, same machine, same data): a bare loop that deletes, file
by file, the object (``storage.delete``) and then the row (one DELETE). A
stricter reference, the "bulk floor", deletes all objects and then all rows
in a single statement. The task
additionally picks rows in batches of 1000, locks them, and writes one
``file.deleted`` outbox event (plus a delivery row per subscribed endpoint)
per file. Prints both rates and their ratio (target >= 0.3x).

    python -m uv run python bench/cleanup.py [--files 10000] [--endpoints 1]

Runs against a throwaway database (``test_<DATABASE_NAME>``, created and
dropped here) and a temporary media directory, so it touches no real data.

With ``--follow-ups`` it measures what operators see instead: a backlog of
expired files (default 100 000) and one run sent as beat sends it, to a real
worker (the documented command); the run and the follow-ups it queues drain
the backlog. Prints how long that took beside ``CLEANUP_UPLOADS_INTERVAL_HOURS``.

    python -m uv run python bench/cleanup.py --follow-ups [--files 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(media_root: str) -> None:
    import dj_database_url

    # A database of its own (test_<name>_bench, made and dropped here); the
    # Test configuration points the broker at the same one. The default is
    # spelled out: importing boot.settings would set Django up (boot/__init__
    # loads the Celery app) before DATABASE_URL is changed below.
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/doorito")
    name = dj_database_url.parse(url)["NAME"]
    os.environ["DATABASE_URL"] = url.rsplit("/", 1)[0] + f"/{name}_bench"
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boot.settings")
    os.environ.setdefault("DJANGO_CONFIGURATION", "Test")
    os.environ["MEDIA_ROOT"] = media_root
    os.environ["STORAGE_BACKEND"] = "local"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import configurations

    configurations.setup()


def populate(owner, count: int) -> None:
    """``count`` expired stored files: real objects on disk and their rows."""
    from django.utils import timezone

    from portal.models import UploadFile
    from portal.storage import file_storage, generate_storage_key

    storage = file_storage()
    old = timezone.now() - timedelta(days=3)
    rows = []
    for i in range(count):
        key = generate_storage_key()
        path = Path(storage.path(key))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"%d" % i)
        rows.append(
            UploadFile(
                owner=owner,
                storage_key=key,
                filename=f"file-{i}.txt",
                content_type="text/plain",
                size=len(b"%d" % i),
                sha256="0" * 64,
                status=UploadFile.Status.STORED,
                stored_at=old,
                expires_at=old + timedelta(hours=24),
            )
        )
    UploadFile.objects.bulk_create(rows, batch_size=2000)
    UploadFile.objects.update(created_at=old)


def bare_loop() -> int:
    """The baseline the issue names: per file, delete the object, then the row."""
    from django.db import connection

    from portal.models import UploadFile
    from portal.storage import file_storage

    storage = file_storage()
    rows = list(UploadFile.objects.values_list("id", "storage_key"))
    with connection.cursor() as cursor:
        for pk, key in rows:
            storage.delete(key)
            cursor.execute("DELETE FROM portal_uploadfile WHERE id = %s", [pk])
    return len(rows)


def bulk_floor() -> int:
    """A stricter reference: delete every object, then every row in one statement."""
    from portal.models import UploadFile
    from portal.storage import file_storage

    storage = file_storage()
    keys = list(UploadFile.objects.values_list("storage_key", flat=True))
    for key in keys:
        storage.delete(key)
    UploadFile.objects.all()._raw_delete(UploadFile.objects.db)
    return len(keys)


def task_runs() -> tuple[int, int]:
    from portal.tasks import cleanup_expired_upload_files_task

    deleted = runs = 0
    while True:
        # Called like a worker calls it (not .apply(), which would also run
        # the delivery tasks requested on commit in this process).
        result = cleanup_expired_upload_files_task()
        runs += 1
        deleted += result["deleted"]
        if result["remaining"] == 0:
            return deleted, runs


def follow_up_drain(count: int, log: Path) -> tuple[float, int, list[dict]]:
    """One task sent to a real worker; seconds until no expired file is left, and the runs."""
    from django.conf import settings
    from django.db import connection
    from django_celery_results.models import TaskResult

    from bench._harness import spawn, stop, worker_command
    from common.tasks import ping
    from portal.models import UploadFile
    from portal.services.cleanup import CLEANUP_TASK
    from portal.tasks import cleanup_expired_upload_files_task

    s = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}"
        f"/{s['NAME']}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "DATABASE_CONN_MAX_AGE": "60",
    }
    worker = spawn(worker_command(2, "info"), env, log)
    print(f"worker log: {log}", file=sys.stderr)
    try:
        ping.apply_async().get(timeout=120)
        start = time.perf_counter()
        cleanup_expired_upload_files_task.delay()
        while UploadFile.objects.exists():
            time.sleep(0.2)
        seconds = time.perf_counter() - start
        # The last run's result is written just after its rows are gone.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = TaskResult.objects.filter(task_name=CLEANUP_TASK, status="SUCCESS").order_by(
                "date_done"
            )
            runs = [
                {**json.loads(r.result), "seconds": (r.date_done - r.date_started).total_seconds()}
                for r in rows
            ]
            if sum(r["deleted"] for r in runs) >= count:
                break
            time.sleep(0.2)
    finally:
        stop(worker)
    return seconds, len(runs), runs


def close_broker_connections() -> None:
    """Delivery requests went to the SQL broker; its pooled connections block DROP."""
    from boot.celery import app
    from broker import dispose_engines

    app.pool.force_close_all()
    dispose_engines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--files", type=int, default=None, help="10 000 (100 000 with --follow-ups)"
    )
    parser.add_argument("--endpoints", type=int, default=1, help="active webhook endpoints")
    parser.add_argument(
        "--follow-ups",
        action="store_true",
        help="one run sent to a real worker drains --files (default 100 000) with follow-ups",
    )
    args = parser.parse_args()
    if args.files is None:
        args.files = 100_000 if args.follow_ups else 10_000
    if args.files < 1 or args.endpoints < 0:
        parser.error("--files must be >= 1 and --endpoints >= 0")
    if args.follow_ups:
        follow_ups_main(args)
        return

    with tempfile.TemporaryDirectory(prefix="doorito-bench-") as media_root:
        setup_django(media_root)
        from django.db import connection

        from accounts.models import User
        from common.models import OutboxEvent, WebhookEndpoint
        from common.services.signing import generate_secret

        old_name = connection.settings_dict["NAME"]
        connection.creation.create_test_db(verbosity=0, autoclobber=True)
        try:
            owner = User.objects.create_user("bench@example.com", "bench-password-1")
            for i in range(args.endpoints):
                WebhookEndpoint.objects.create(
                    url=f"http://127.0.0.1:9/hook-{i}", secret=generate_secret()
                )

            timings = {}
            for label, run in (("bare", bare_loop), ("floor", bulk_floor)):
                populate(owner, args.files)
                start = time.perf_counter()
                count = run()
                timings[label] = (count, time.perf_counter() - start)

            populate(owner, args.files)
            start = time.perf_counter()
            task_deleted, runs = task_runs()
            timings["task"] = (task_deleted, time.perf_counter() - start)
            events = OutboxEvent.objects.filter(event_type="file.deleted").count()
        finally:
            close_broker_connections()
            connection.creation.destroy_test_db(old_name, verbosity=0)

    assert {count for count, _ in timings.values()} == {args.files}, timings
    assert events == args.files, events
    rate = {label: count / seconds for label, (count, seconds) in timings.items()}
    print(f"files: {args.files}, active webhook endpoints: {args.endpoints}")
    print(f"bare loop (object + row per file):   {rate['bare']:8.0f} files/s")
    print(f"bulk floor (objects + one DELETE):   {rate['floor']:8.0f} files/s")
    print(f"cleanup task ({runs} runs, {events} events): {rate['task']:8.0f} files/s")
    print(f"ratio task/bare loop:  {rate['task'] / rate['bare']:.2f}x (target >= 0.3x)")
    print(f"ratio task/bulk floor: {rate['task'] / rate['floor']:.2f}x")


def follow_ups_main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="doorito-bench-") as media_root:
        setup_django(media_root)
        from django.conf import settings
        from django.db import connection

        from accounts.models import User
        from common.models import OutboxEvent, WebhookEndpoint
        from common.services.signing import generate_secret

        interval_hours = int(settings.CLEANUP_UPLOADS_INTERVAL_HOURS)
        old_name = connection.settings_dict["NAME"]
        connection.creation.create_test_db(verbosity=0, autoclobber=True)
        try:
            owner = User.objects.create_user("bench@example.com", "bench-password-1")
            for i in range(args.endpoints):
                WebhookEndpoint.objects.create(
                    url=f"http://127.0.0.1:9/hook-{i}", secret=generate_secret()
                )
            started = time.perf_counter()
            populate(owner, args.files)
            made = time.perf_counter() - started
            log = Path(media_root) / "worker.log"
            seconds, runs, results = follow_up_drain(args.files, log)
            events = OutboxEvent.objects.filter(event_type="file.deleted").count()
        finally:
            close_broker_connections()
            connection.creation.destroy_test_db(old_name, verbosity=0)

    deleted = sum(r["deleted"] for r in results)
    assert deleted == args.files == events, (deleted, args.files, events)
    assert max(r["deleted"] for r in results) <= 1000, results
    print(f"files: {args.files} expired (made in {made:.0f} s), endpoints: {args.endpoints}")
    print(f"one run sent, {runs} runs in all (each <= 1000 files), {events} file.deleted events")
    busy = sum(r["seconds"] for r in results)
    print(f"backlog drained in {seconds:.1f} s = {args.files / seconds:.0f} files/s")
    print(f"time inside the runs: {busy:.1f} s (the rest: queueing and picking up follow-ups)")
    print(
        f"CLEANUP_UPLOADS_INTERVAL_HOURS = {interval_hours} h: drained in "
        f"{seconds / (interval_hours * 3600) * 100:.2f} % of one interval"
    )


if __name__ == "__main__":
    main()
