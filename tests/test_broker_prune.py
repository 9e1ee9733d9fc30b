"""Consumed kombu rows are pruned, in whichever database the broker lives; unconsumed ones stay."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection

from boot.celery import app
from broker import dispose_engines, prune_consumed_broker_messages, queue_depths
from common.tasks import prune_broker_messages_task
from tests.brokers import publishing_to

COUNTS_SQL = (
    "SELECT count(*) FILTER (WHERE m.visible), count(*) FILTER (WHERE NOT m.visible)"
    " FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = %s"
)


def counts(queue: str) -> tuple[int, int]:
    """(visible, consumed) messages of ``queue`` in Django's database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('kombu_message')")
        if cursor.fetchone()[0] is None:
            return (0, 0)  # no broker ever used this database
        cursor.execute(COUNTS_SQL, [queue])
        return cursor.fetchone()


def put_and_consume(queue: str, *, put: int, consume: int) -> None:
    with app.connection_for_write() as conn:
        q = conn.SimpleQueue(queue)
        for i in range(put):
            q.put({"n": i})
        for _ in range(consume):
            q.get(timeout=5).ack()
        q.close()


@pytest.mark.django_db(transaction=True)
def test_prune_removes_consumed_rows_and_keeps_unconsumed():
    put_and_consume("prune-probe", put=5, consume=3)
    assert counts("prune-probe") == (2, 3)
    result = prune_consumed_broker_messages()
    assert result.deleted >= 3
    assert result.remaining == 0
    assert counts("prune-probe") == (2, 0)
    assert prune_broker_messages_task.apply().get() == {"deleted": 0, "remaining": 0}


def admin_conninfo(dbname: str) -> str:
    s = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        host=s["HOST"] or "127.0.0.1",
        port=s["PORT"] or 5432,
        user=s["USER"],
        password=s.get("PASSWORD") or None,
        dbname=dbname,
    )


@pytest.fixture
def other_database() -> Iterator[str]:
    """A database of its own for the broker, beside (not inside) Django's; dropped after."""
    name = f"{connection.settings_dict['NAME']}_broker_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin_conninfo("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        # publishing_to has dropped the app's connections to it by now.
        dispose_engines()
        with psycopg.connect(admin_conninfo("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.django_db(transaction=True)
def test_a_broker_in_another_database_is_pruned_there(settings, other_database):
    s = connection.settings_dict
    server = f"{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}"
    url = f"sqla+postgresql+psycopg://{server}/{other_database}"
    with publishing_to(settings, url):
        put_and_consume("elsewhere", put=5, consume=3)
        assert queue_depths(cap=100) == {"elsewhere": 2}
        with psycopg.connect(admin_conninfo(other_database)) as broker_db:
            assert broker_db.execute(COUNTS_SQL, ["elsewhere"]).fetchone() == (2, 3)
            # Django's database holds no broker rows of this queue at all.
            assert counts("elsewhere") == (0, 0)
            assert prune_broker_messages_task.apply().get() == {"deleted": 3, "remaining": 0}
            assert broker_db.execute(COUNTS_SQL, ["elsewhere"]).fetchone() == (2, 0)


def test_prune_and_depths_leave_other_brokers_alone(settings):
    # No server at this address: a connection attempt would fail the test.
    with publishing_to(settings, "amqp://guest:guest@127.0.0.1:1//"):
        assert prune_consumed_broker_messages().deleted == 0
        assert queue_depths(cap=10) is None
