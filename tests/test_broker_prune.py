"""Consumed kombu rows are pruned; unconsumed ones stay."""

from __future__ import annotations

import pytest
from django.db import connection

from boot.celery import app
from common.services.broker import prune_consumed_broker_messages
from common.tasks import prune_broker_messages_task


def counts(queue: str) -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE m.visible), count(*) FILTER (WHERE NOT m.visible)"
            " FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = %s",
            [queue],
        )
        return cursor.fetchone()


@pytest.mark.django_db(transaction=True)
def test_prune_removes_consumed_rows_and_keeps_unconsumed():
    with app.connection_for_write() as conn:
        q = conn.SimpleQueue("prune-probe")
        for i in range(5):
            q.put({"n": i})
        for _ in range(3):
            q.get(timeout=5).ack()
        q.close()
    assert counts("prune-probe") == (2, 3)
    result = prune_consumed_broker_messages()
    assert result.deleted >= 3
    assert result.remaining == 0
    assert counts("prune-probe") == (2, 0)
    assert prune_broker_messages_task.apply().get() == {"deleted": 0, "remaining": 0}
