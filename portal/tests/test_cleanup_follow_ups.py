"""TTL cleanup keeps up: a run over the cap queues a follow-up, never a pile of them."""

from __future__ import annotations

import ast
import re

import psycopg
import pytest
from celery import current_app
from django.db import connection

from common.models import OutboxEvent
from conftest import wait_until
from portal.models import UploadFile
from portal.services import cleanup
from portal.services.cleanup import CLEANUP_TASK, cleanup_follow_up_request, cleanup_run
from portal.storage import file_storage
from portal.tasks import cleanup_expired_upload_files_task
from portal.tests.aging import expired_files_on_disk


def test_a_run_over_the_cap_asks_for_one_follow_up(user, follow_ups):
    expired_files_on_disk(user, 25)

    first = cleanup_run(ttl_hours=24, batch_size=10)
    assert (first.deleted, first.remaining) == (10, 15)
    assert len(follow_ups) == 1
    cleanup_run(ttl_hours=24, batch_size=10)
    last = cleanup_run(ttl_hours=24, batch_size=10)
    assert (last.deleted, last.remaining) == (5, 0)
    assert len(follow_ups) == 2  # none after the run that left nothing
    assert not UploadFile.objects.exists()


def test_the_task_keeps_its_return_format_and_cap(user, follow_ups):
    expired_files_on_disk(user, 1200)
    assert cleanup_expired_upload_files_task.apply().get() == {"deleted": 1000, "remaining": 200}
    assert follow_ups == [1]


@pytest.mark.django_db(transaction=True)
def test_a_run_while_another_holds_the_lock_does_nothing(user, follow_ups):
    """Beat's run meeting a follow-up (or two follow-ups) never doubles the chain."""
    expired_files_on_disk(user, 5)
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("pool", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [cleanup._RUN_LOCK])
        result = cleanup_run(ttl_hours=24)
        # Released by hand: a closed connection's backend may linger a moment
        # (and its lock with it) after the client has gone.
        other.execute("SELECT pg_advisory_unlock(%s)", [cleanup._RUN_LOCK])
    assert (result.deleted, result.remaining) == (0, 5)
    assert follow_ups == []
    assert UploadFile.objects.count() == 5
    # The other holder let go; the next run works.
    assert cleanup_run(ttl_hours=24).deleted == 5


@pytest.mark.django_db(transaction=True)
def test_no_second_follow_up_while_one_waits(settings):
    """On the SQL broker a waiting run is seen, so repeated asks queue one message."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    current_app.control.purge()  # whatever another test of this database left queued
    try:
        assert cleanup_follow_up_request() is True
        assert cleanup_follow_up_request() is False
        assert cleanup_follow_up_request() is False
    finally:
        current_app.control.purge()


def test_eager_mode_queues_nothing(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    assert cleanup_follow_up_request() is False


@pytest.mark.processes
@pytest.mark.slow
def test_a_real_worker_drains_a_backlog_over_the_cap_with_follow_ups(celery_worker, user):
    """One run (as beat sends it) and its follow-ups delete 2 500 files, 1 000 per run."""
    keys = expired_files_on_disk(user, 2500)

    cleanup_expired_upload_files_task.delay()

    wait_until(lambda: not UploadFile.objects.exists(), timeout=180, what="the backlog to drain")
    assert OutboxEvent.objects.filter(event_type="file.deleted").count() == 2500
    assert not any(file_storage().exists(key) for key in keys[::50])

    def results() -> list[dict]:
        pattern = re.escape(CLEANUP_TASK) + r"\[[^\]]+\] succeeded in [0-9.]+s: (\{[^}]*\})"
        return [ast.literal_eval(m) for m in re.findall(pattern, celery_worker.output())]

    # The last follow-up's answer may still be on its way to the log.
    wait_until(lambda: sum(r["deleted"] for r in results()) == 2500, timeout=30, what="results")
    runs = results()
    assert all(r["deleted"] <= 1000 for r in runs)
    assert [r for r in runs if r["deleted"]] == [
        {"deleted": 1000, "remaining": 1500},
        {"deleted": 1000, "remaining": 500},
        {"deleted": 500, "remaining": 0},
    ]
