"""Celery on the PostgreSQL broker with a real worker subprocess."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from django.db import connection
from django_celery_results.models import TaskResult

from common.tasks import ping
from conftest import database_url_for_tests, kill_process, start_worker, wait_for_ping


def queued_messages() -> list[tuple[str, dict]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT q.name, m.payload FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id"
            " WHERE m.visible"
        )
        return [(name, json.loads(payload)) for name, payload in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)
def test_plain_delay_lands_in_the_default_queue():
    result = ping.delay()
    by_id = {msg.get("headers", {}).get("id"): name for name, msg in queued_messages()}
    assert by_id[result.id] == "default"
    assert "celery" not in by_id.values()


@pytest.mark.processes
def test_worker_runs_ping_from_both_queues_and_stores_results(celery_worker):
    sent = [ping.apply_async(queue="high"), ping.apply_async(queue="default"), ping.delay()]
    for r in sent:
        assert r.get(timeout=60)["pong"] is True
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stored = TaskResult.objects.filter(task_id__in=[r.id for r in sent], status="SUCCESS")
        if stored.count() == len(sent):
            break
        time.sleep(0.2)
    assert stored.count() == len(sent)
    assert all(t.task_name == "common.tasks.ping" for t in stored)


def connections_used_since(application_name: str, since) -> list[int]:
    """Backends with this name that ran a statement after ``since`` (database clock)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND state_change > %s",
            [application_name, since],
        )
        return [pid for (pid,) in cursor.fetchall()]


def database_now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("max_age", ["60", "0"])
def test_worker_keeps_or_closes_its_database_connection_by_conn_max_age(tmp_path, max_age):
    """Celery's Django fixup would close the connection after every task.

    Each ping stores its result through the child's Django connection, so
    after a ping that connection is either still open and the same one
    (``DATABASE_CONN_MAX_AGE`` > 0) or closed (0).
    """
    name = f"doorito-test-{uuid.uuid4().hex[:12]}"
    worker = start_worker(
        tmp_path,
        concurrency=1,
        DATABASE_URL=f"{database_url_for_tests()}?application_name={name}",
        DATABASE_CONN_MAX_AGE=max_age,
    )
    try:
        wait_for_ping(worker)
        seen = []
        for _ in range(4):
            since = database_now()
            assert ping.delay().get(timeout=30)["pong"] is True
            # The task's end-of-run hooks run just after its result is stored.
            deadline = time.monotonic() + 5
            while True:
                pids = connections_used_since(name, since)
                if (len(pids) == 1) if max_age != "0" else not pids:
                    break
                assert time.monotonic() < deadline, f"connections after a ping: {pids}"
                time.sleep(0.05)
            seen.extend(pids)
        if max_age != "0":
            assert len(set(seen)) == 1, seen
    finally:
        kill_process(worker.proc)
