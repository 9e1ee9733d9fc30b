"""`manage.py status`: a worker proven by a real round trip, beat by its lock and heartbeat."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys

import pytest
from django.utils import timezone

from common.models import BeatHeartbeat
from common.services.beat import SchedulerLock
from conftest import ROOT, kill_process, start_beat, subprocess_env, wait_for_log


def status_in_process(*args: str, eager: bool = False) -> subprocess.CompletedProcess:
    """The command in this process (exit status 1 for its CommandError, as manage.py)."""
    from celery import current_app
    from django.core.management import CommandError, call_command

    out = io.StringIO()
    was = current_app.conf.task_always_eager
    current_app.conf.task_always_eager = eager
    try:
        call_command("status", *args, stdout=out)
        code = 0
    except CommandError:
        code = 1
    finally:
        current_app.conf.task_always_eager = was
    return subprocess.CompletedProcess(["status", *args], code, out.getvalue(), "")


def status(*args: str, **env: str) -> subprocess.CompletedProcess:
    """The documented command line, in a process of its own."""
    return subprocess.run(
        [sys.executable, "manage.py", "status", *args],
        cwd=ROOT,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.django_db(transaction=True)
def test_eager_mode_says_it_cannot_check_a_worker():
    out = status_in_process("--queue", "nosuchqueue", "--no-beat", eager=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "cannot check a worker" in out.stdout
    assert "worker     ok" not in out.stdout
    doc = json.loads(status_in_process("--json", "--no-beat", eager=True).stdout)
    assert doc["worker"]["state"] == "cannot check"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_no_worker_and_no_beat_is_unhealthy():
    out = status_in_process("--json", "--timeout", "3")
    assert out.returncode != 0
    doc = json.loads(out.stdout)
    assert doc["database"] == "ok"
    assert doc["worker"]["state"] == "no answer"
    assert doc["beat"]["state"] == "not running"
    assert doc["beat"]["holder"] is None
    assert doc["healthy"] is False
    assert set(doc["failed"]) == {"worker", "beat"}


@pytest.mark.slow
def test_real_worker_and_beat_are_reported(celery_worker, tmp_path):
    beat = start_beat(tmp_path)
    try:
        wait_for_log(beat, "holding the scheduler lock", timeout=90)
        out = status("--json", "--timeout", "60")
        text = status("--timeout", "60")
    finally:
        kill_process(beat.proc)
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    assert doc["worker"]["state"] == "ok"
    assert doc["worker"]["hostname"]
    assert doc["beat"]["state"] == "ok"
    assert doc["beat"]["holder"].startswith("doorito-beat ")
    assert "deliver-outbox-events-sweep" in doc["beat"]["entries"]
    assert text.returncode == 0, text.stdout + text.stderr
    assert "worker     ok" in text.stdout
    assert "beat       ok (doorito-beat " in text.stdout


@pytest.mark.django_db(transaction=True)
def test_a_stale_heartbeat_or_a_failing_entry_is_unhealthy():
    lock = SchedulerLock(name="doorito-beat test:1")
    assert lock.check()
    try:
        BeatHeartbeat.objects.create(
            holder=lock.name,
            acquired_at=timezone.now(),
            ticked_at=timezone.now() - dt.timedelta(minutes=5),
        )
        doc = json.loads(status_in_process("--json", "--no-ping").stdout)
        assert (doc["beat"]["state"], doc["beat"]["holder"]) == ("stale", "doorito-beat test:1")

        failing = {"x": {"since": "2026-01-01T00:00:00+00:00", "attempts": 4, "error": "down"}}
        BeatHeartbeat.objects.filter(pk=1).update(ticked_at=timezone.now(), failing=failing)
        out = status_in_process("--no-ping")
        assert out.returncode != 0
        assert "beat       failing" in out.stdout

        BeatHeartbeat.objects.filter(pk=1).update(failing={})
        assert status_in_process("--no-ping").returncode == 0
        # A second lock on the same database waits.
        other = SchedulerLock(name="doorito-beat other:2")
        assert not other.check()
        other.release()
    finally:
        lock.release()
