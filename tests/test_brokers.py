"""RabbitMQ and Redis as the broker, with no code changes (README "Scaling out").

A real worker on each broker delivers 200 webhook events that 200 committed
transactions emitted (outbox → on-commit ``deliver_outbox_events_task`` →
the worker → a real receiver), and none is lost. No beat runs, so only the
broker messages can have delivered them.

The brokers are the machine's (127.0.0.1:5672 guest/guest, 127.0.0.1:6379).
A broker that does not answer skips its test, except under ``CI=true``.
"""

from __future__ import annotations

import random
import time
from urllib.parse import quote

import pytest
from django.db import transaction

from common.models import OutboxEvent
from common.services.webhooks import endpoint_create
from common.tests.events import emit_file_stored
from common.tests.receivers import Receiver
from conftest import kill_process, start_worker, wait_for_ping
from tests.brokers import publishing_to, rabbitmq_vhost, require_server

EVENTS = 200


def deliver_through(settings, tmp_path, broker_url: str) -> None:
    receiver = Receiver()
    try:
        with publishing_to(settings, broker_url):
            worker = start_worker(tmp_path)
            try:
                wait_for_ping(worker, timeout=90)
                endpoint_create(url=receiver.url("/hook"))
                ids = set()
                for i in range(EVENTS):
                    with transaction.atomic():
                        event = emit_file_stored(i)
                        ids.add(str(event.id))
                receiver.wait_for(EVENTS, timeout=180)
                deadline = time.monotonic() + 60
                while OutboxEvent.objects.exclude(status="delivered").exists():
                    assert time.monotonic() < deadline, "events not recorded as delivered"
                    time.sleep(0.2)
            finally:
                kill_process(worker.proc)
            log = worker.output()
    finally:
        receiver.close()
    received = {r.headers["webhook-id"] for r in receiver.requests}
    assert received == ids, f"lost: {len(ids - received)}\n{log[-3000:]}"
    assert OutboxEvent.objects.filter(status="delivered").count() == EVENTS


@pytest.mark.slow
@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_rabbitmq_broker_delivers_every_event(settings, tmp_path):
    require_server("127.0.0.1", 5672, "RabbitMQ")
    with rabbitmq_vhost() as vhost:
        url = f"amqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"
        deliver_through(settings, tmp_path, url)


@pytest.mark.slow
@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_redis_broker_delivers_every_event(settings, tmp_path):
    require_server("127.0.0.1", 6379, "Redis")
    # A database number of its own, most likely unused by any other test run.
    db = random.randrange(1, 16)
    deliver_through(settings, tmp_path, f"redis://127.0.0.1:6379/{db}")
