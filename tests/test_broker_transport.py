"""The SQL broker transport: single-statement put/get and LISTEN/NOTIFY wake-ups."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.conf import settings
from django.db import connection
from kombu import Connection

import broker
from boot.celery import app

pytestmark = pytest.mark.django_db(transaction=True)


def rows(queue: str) -> list[tuple[bool, bool]]:
    """(visible, consumed-timestamp set) per message of a queue, in id order."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT m.visible, m.timestamp IS NOT NULL FROM kombu_message m"
            " JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = %s ORDER BY m.id",
            [queue],
        )
        return cursor.fetchall()


def publish(queue: str, count: int) -> None:
    """``count`` messages ``{"n": i}`` on ``queue``, through the app's broker."""
    with app.connection_for_write() as conn:
        q = conn.SimpleQueue(queue)
        for i in range(count):
            q.put({"n": i})
        q.close()


def test_the_broker_url_uses_the_notifying_transport():
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, broker.Transport)


def test_messages_come_back_in_order_and_are_marked_consumed():
    queue = f"probe-{uuid.uuid4().hex[:8]}"
    with app.connection_for_write() as conn:
        q = conn.SimpleQueue(queue)
        for i in range(3):
            q.put({"n": i})
        assert rows(queue) == [(True, False)] * 3
        got = []
        for _ in range(2):
            message = q.get(timeout=5)
            got.append(message.payload["n"])
            message.ack()
        q.close()
    assert got == [0, 1]
    assert rows(queue) == [(False, True), (False, True), (True, False)]


def test_an_idle_consumer_is_woken_by_a_publish_not_by_its_poll(monkeypatch) -> None:
    # With a one-minute poll, only the NOTIFY can deliver within the 20 s wait.
    monkeypatch.setattr(broker.Transport, "polling_interval", 60.0)
    queue = f"wake-{uuid.uuid4().hex[:8]}"
    received: list[dict] = []

    def consume() -> None:
        with Connection(settings.CELERY_BROKER_URL) as conn:
            q = conn.SimpleQueue(queue)
            message = q.get(timeout=20)
            received.append(message.payload)
            message.ack()
            q.close()

    consumer = threading.Thread(target=consume)
    consumer.start()
    time.sleep(1.0)  # the consumer is waiting on LISTEN by now
    with Connection(settings.CELERY_BROKER_URL) as conn:
        conn.SimpleQueue(queue).put({"hello": "world"})
    consumer.join(timeout=30)
    assert received == [{"hello": "world"}]


def test_two_consumers_never_get_the_same_message() -> None:
    queue = f"share-{uuid.uuid4().hex[:8]}"
    publish(queue, 200)
    seen: list[list[int]] = [[], []]

    def consume(out: list[int]) -> None:
        with Connection(settings.CELERY_BROKER_URL) as conn:
            q = conn.SimpleQueue(queue)
            while True:
                try:
                    message = q.get(timeout=1)
                except q.Empty:
                    break
                out.append(message.payload["n"])
                message.ack()
            q.close()

    threads = [threading.Thread(target=consume, args=(out,)) for out in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    together = seen[0] + seen[1]
    assert sorted(together) == list(range(200))


def test_other_databases_keep_the_stock_behaviour(tmp_path):
    url = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    with Connection(url) as conn:
        assert isinstance(conn.transport, broker.Transport)
        q = conn.SimpleQueue("plain")
        q.put({"n": 1})
        message = q.get(timeout=5)
        assert message.payload == {"n": 1}
        message.ack()
        q.close()


def test_fetching_reads_an_index_of_the_visible_messages_only():
    """Consumed rows stay until pruned; the fetch must not walk past them."""
    queue = f"idx-{uuid.uuid4().hex[:8]}"
    publish(queue, 1)
    with app.connection_for_write() as conn:
        index = broker.Tables.of(conn.default_channel).visible_index
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [index])
        (definition,) = cursor.fetchone()
        assert "(queue_id, id)" in definition and "WHERE visible" in definition
        cursor.execute("SELECT id FROM kombu_queue WHERE name = %s", [queue])
        (queue_id,) = cursor.fetchone()
        cursor.execute(
            "INSERT INTO kombu_message (id, queue_id, visible, payload, version)"
            " SELECT nextval('message_id_sequence'), %s, false, '{}', 1"
            " FROM generate_series(1, 5000)",
            [queue_id],
        )
        cursor.execute("ANALYZE kombu_message")
        cursor.execute(
            "EXPLAIN SELECT id FROM kombu_message WHERE queue_id = %s AND visible"
            " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
            [queue_id],
        )
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert index in plan, plan


def idle_in_transaction() -> list[tuple[int, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%%'"
        )
        return cursor.fetchall()


def test_declaring_and_sizing_a_queue_leave_no_transaction_open():
    """An open read transaction pins the xmin horizon: VACUUM then removes nothing."""
    queue = f"tx-{uuid.uuid4().hex[:8]}"
    with app.connection_for_write() as conn:
        q = conn.SimpleQueue(queue)  # declares the queue (and asks for its size)
        q.put({"n": 1})
        assert q.qsize() == 1
        assert idle_in_transaction() == []
        q.close()


def test_task_waiting_sees_only_unfetched_due_messages_of_that_task():
    from common.tasks import deliver_outbox_events_task, ping

    app.control.purge()
    name = deliver_outbox_events_task.name
    assert broker.task_waiting(app, task_name=name, queue="default") is False
    ping.delay()
    deliver_outbox_events_task.apply_async(countdown=60)  # held back by its ETA
    assert broker.task_waiting(app, task_name=name, queue="default") is False
    deliver_outbox_events_task.delay()
    assert broker.task_waiting(app, task_name=name, queue="default") is True
    assert broker.task_waiting(app, task_name=name, queue="high") is False
    with connection.cursor() as cursor:  # what a worker's fetch does
        cursor.execute("UPDATE kombu_message SET visible = false")
    assert broker.task_waiting(app, task_name=name, queue="default") is False
    app.control.purge()


# Runs in a process of its own: pytest's has threads, and forking one with
# threads may deadlock the child.
FORK_PROBE = """
import os
import django

django.setup()
from sqlalchemy import text
from boot.celery import app

def backend_pid(engine):
    with engine.connect() as db:
        return db.execute(text("SELECT pg_backend_pid()")).scalar()

with app.connection_for_write() as conn:
    engine = conn.default_channel._engine()
    parent = backend_pid(engine)  # the pool's one connection, idle now
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.write(write, str(backend_pid(engine)).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    in_child = int(os.read(read, 64))
    print(parent, in_child, backend_pid(engine))
"""


@pytest.mark.processes
def test_a_forked_child_never_uses_a_connection_its_parent_pooled():
    """A Celery pool child forked after the main process fetched messages (a
    replaced child) must open its own broker connection, not share a socket."""
    import subprocess
    import sys

    from conftest import ROOT, subprocess_env

    done = subprocess.run(
        [sys.executable, "-c", FORK_PROBE],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    parent, in_child, parent_again = map(int, done.stdout.split()[-3:])
    assert in_child != parent
    assert parent_again != in_child  # the parent's pool still works, on its own
