"""Celery on the PostgreSQL broker with a real worker subprocess."""

from __future__ import annotations

import json
import time

import pytest
from django.db import connection
from django_celery_results.models import TaskResult

from common.tasks import ping


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


@pytest.mark.worker
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
