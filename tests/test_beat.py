"""Beat's DatabaseScheduler writes every configured entry into PeriodicTask rows."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from django.conf import settings
from django_celery_beat.models import PeriodicTask

from conftest import ROOT, stop_process, subprocess_env


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_beat_syncs_schedule_into_database(tmp_path):
    expected = set(settings.CELERY_BEAT_SCHEDULE)
    assert {
        "cleanup-expired-upload-files",
        "deliver-outbox-events-sweep",
        "cleanup-delivered-outbox-events",
        "notify-expiring-files",
    } <= expected
    log = (tmp_path / "beat.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "boot",
            "beat",
            "--scheduler",
            "django_celery_beat.schedulers:DatabaseScheduler",
            "--loglevel=info",
        ],
        cwd=ROOT,
        env=subprocess_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            names = set(PeriodicTask.objects.values_list("name", flat=True))
            if expected <= names:
                break
            time.sleep(0.5)
    finally:
        stop_process(proc)
    assert expected <= names, (tmp_path / "beat.log").read_text()
    sweep = PeriodicTask.objects.get(name="deliver-outbox-events-sweep")
    assert sweep.task == "common.tasks.deliver_outbox_events_task"
    assert (sweep.interval.every, sweep.interval.period) == (
        settings.OUTBOX_SWEEP_INTERVAL_MINUTES * 60,
        "seconds",
    )
    cleanup = PeriodicTask.objects.get(name="cleanup-delivered-outbox-events")
    assert cleanup.crontab.minute == "30"
    assert cleanup.crontab.hour == "*/6"
    files = PeriodicTask.objects.get(name="cleanup-expired-upload-files")
    assert files.crontab.minute == "0"
    assert files.crontab.hour == f"*/{settings.CLEANUP_UPLOADS_INTERVAL_HOURS}"
