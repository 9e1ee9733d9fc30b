"""Beat's DatabaseScheduler writes every configured entry into PeriodicTask rows."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from conftest import ROOT, kill_process, start_beat, stop_process, subprocess_env, wait_for_log
from tests.test_ensure_db import free_port, run_python, script_env


@pytest.mark.processes
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
        kill_process(proc)
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


# --- single beat, outage recovery, failing sends (boot/beat.py) --------------

PROBE = "probe-every-second"


def add_probe_entry(every: int = 1) -> None:
    """A beat entry due every ``every`` seconds that sends ``common.tasks.ping``."""
    from django_celery_beat.models import IntervalSchedule

    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period="seconds")
    PeriodicTask.objects.update_or_create(
        name=PROBE, defaults={"task": "common.tasks.ping", "interval": interval, "queue": "high"}
    )


def probe_runs() -> int:
    return PeriodicTask.objects.get(name=PROBE).total_run_count


@pytest.mark.processes
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_second_beat_waits_and_takes_over_within_seconds_of_a_sigkill(tmp_path):
    add_probe_entry()
    first = start_beat(tmp_path, name="first")
    second = None
    try:
        wait_for_log(first, "holding the scheduler lock", timeout=90)
        wait_for_log(first, f"Sending due task {PROBE}", timeout=30)
        second = start_beat(tmp_path, name="second")
        wait_for_log(second, "waiting for the scheduler lock", timeout=90)
        time.sleep(3)
        assert "Sending due task" not in second.output()
        assert "holding the scheduler lock" not in second.output()

        os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=10)
        killed = time.monotonic()
        runs = probe_runs()
        took_over = wait_for_log(second, "holding the scheduler lock", timeout=30)
        assert took_over - killed < 10, second.output()[-3000:]
        wait_for_log(second, f"Sending due task {PROBE}", timeout=15)
        deadline = time.monotonic() + 15
        while probe_runs() <= runs and time.monotonic() < deadline:
            time.sleep(0.2)
        assert probe_runs() > runs
    finally:
        kill_process(first.proc)
        if second is not None:
            stop_process(second.proc)


@pytest.mark.processes
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_send_that_keeps_failing_is_retried_logged_at_error_and_shown_by_status(tmp_path):
    from common.models import BeatHeartbeat

    add_probe_entry(every=3600)
    overdue = timezone.now() - dt.timedelta(hours=2)
    PeriodicTask.objects.filter(name=PROBE).update(last_run_at=overdue)
    dead_broker = f"sqla+postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    beat = start_beat(tmp_path, CELERY_BROKER_URL=dead_broker)
    try:
        wait_for_log(beat, "holding the scheduler lock", timeout=90)
        wait_for_log(beat, f"beat: sending {PROBE} failed (attempt 3", timeout=60)
        assert f"ERROR/MainProcess] beat: sending {PROBE} failed (attempt 3" in beat.output()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            heartbeat = BeatHeartbeat.objects.filter(pk=1).first()
            if heartbeat and heartbeat.failing.get(PROBE, {}).get("attempts", 0) >= 3:
                break
            time.sleep(0.2)
        status = subprocess.run(
            [sys.executable, "manage.py", "status", "--json", "--no-ping"],
            cwd=ROOT,
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert beat.proc.poll() is None
    finally:
        kill_process(beat.proc)
    assert status.returncode != 0, status.stdout + status.stderr
    doc = json.loads(status.stdout)
    assert doc["beat"]["state"] == "failing"
    assert doc["beat"]["failing"][PROBE]["attempts"] >= 3
    # A send that never reached the broker does not count as a run.
    last_run_at = dt.datetime.fromisoformat(doc["beat"]["entries"][PROBE])
    assert abs(last_run_at - overdue) < dt.timedelta(seconds=1)


def _value(cursor: psycopg.Cursor[Any]) -> Any:
    row = cursor.fetchone()
    assert row is not None  # these queries always return one row
    return row[0]


def _ping_messages(url: str) -> int:
    with psycopg.connect(url, connect_timeout=3) as conn:
        if _value(conn.execute("SELECT to_regclass('kombu_message')")) is None:
            return 0
        return _value(
            conn.execute(
                "SELECT count(*) FROM kombu_message WHERE payload LIKE %s",
                ['%"task": "common.tasks.ping"%'],
            )
        )


def _wait_for_ping_messages(url: str, more_than: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _ping_messages(url) > more_than:
                return time.monotonic()
        except psycopg.OperationalError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"no more than {more_than} ping messages within {timeout}s")


@pytest.mark.processes
@pytest.mark.slow
def test_beat_sends_again_right_after_a_database_restart(tmp_path, private_database):
    """The issue's outage, on a private cluster: stop PostgreSQL, start it again."""
    cluster = private_database
    url, broker, plain = cluster.url, cluster.broker_url, cluster.dsn
    env = script_env(url, cluster.cluster.data)
    beat = None
    try:
        probe = run_python(
            env,
            "manage.py",
            "shell",
            "-c",
            "from tests.test_beat import add_probe_entry; add_probe_entry()",
            timeout=120,
        )
        assert probe.returncode == 0, probe.stderr
        beat = start_beat(tmp_path, DATABASE_URL=url, CELERY_BROKER_URL=broker)
        _wait_for_ping_messages(plain, more_than=1, timeout=90)

        cluster.stop()
        time.sleep(10)
        cluster.start()
        back = time.monotonic()
        before = _ping_messages(plain)
        sent = _wait_for_ping_messages(plain, more_than=before, timeout=30)
        print(f"beat sent again {sent - back:.2f}s after the database was back")
        assert sent - back < 10
        assert beat.proc.poll() is None
        assert "channel disconnected" not in beat.output()
        # And it keeps sending.
        _wait_for_ping_messages(plain, more_than=before + 2, timeout=15)
    finally:
        if beat is not None:
            kill_process(beat.proc)
