"""RabbitMQ and Redis as the broker, with no code changes (README "Scaling out").

A real worker on each broker delivers 200 webhook events that 200 committed
transactions emitted (outbox → on-commit ``deliver_outbox_events_task`` →
the worker → a real receiver), and none is lost. No beat runs, so only the
broker messages can have delivered them.

The brokers are the machine's (127.0.0.1:5672 guest/guest, 127.0.0.1:6379).
A broker that does not answer skips its test, except under ``CI=true``.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest
from django.db import transaction
from kombu import pools

from common.models import OutboxEvent
from common.services.emit import emit_event
from common.services.webhooks import endpoint_create
from common.tests.receivers import Receiver
from conftest import start_worker, stop_process, wait_for_ping

EVENTS = 200


def require_server(host: str, port: int, name: str) -> None:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        reason = f"{name} is not reachable at {host}:{port} ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI=true this test must run")
        pytest.skip(reason)


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A vhost of its own (so no other worker on the machine takes our tasks),
    made with rabbitmqctl where it can; the default vhost otherwise."""
    ctl = shutil.which("rabbitmqctl")
    vhost = f"doorito-test-{os.getpid()}-{random.randrange(10**6)}"

    def run(*args: str) -> bool:
        done = subprocess.run([ctl, *args], capture_output=True, timeout=60, check=False)
        return done.returncode == 0

    if (
        ctl
        and run("add_vhost", vhost)
        and run("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    ):
        try:
            yield vhost
        finally:
            run("delete_vhost", vhost)
    else:
        yield "/"


@contextmanager
def publishing_to(settings, url: str) -> Iterator[None]:
    """This process sends its tasks (the on-commit delivery runs, the ping)
    through ``url``, as the worker it starts reads from it."""
    from boot.celery import app

    def drop_connections() -> None:
        # app.pool is kombu's global pool for the broker URL. Closing it alone
        # left the closed pool in kombu's registry, and every later test on
        # the default broker was handed it again ("Acquire on closed pool"):
        # close and forget them all.
        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    old = app.conf.broker_url
    settings.CELERY_BROKER_URL = url  # the worker's environment (conftest.subprocess_env)
    drop_connections()
    app.conf.broker_url = url
    try:
        yield
    finally:
        drop_connections()
        app.conf.broker_url = old


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
                        ids.add(
                            str(
                                emit_event(
                                    event_type="file.stored",
                                    aggregate_type="file",
                                    aggregate_id=f"f{i}",
                                    payload={"i": i},
                                ).id
                            )
                        )
                receiver.wait_for(EVENTS, timeout=180)
                deadline = time.monotonic() + 60
                while OutboxEvent.objects.exclude(status="delivered").exists():
                    assert time.monotonic() < deadline, "events not recorded as delivered"
                    time.sleep(0.2)
            finally:
                stop_process(worker.proc)
            log = worker.output()
    finally:
        receiver.close()
    received = {r.headers["webhook-id"] for r in receiver.requests}
    assert received == ids, f"lost: {len(ids - received)}\n{log[-3000:]}"
    assert OutboxEvent.objects.filter(status="delivered").count() == EVENTS


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_rabbitmq_broker_delivers_every_event(settings, tmp_path):
    require_server("127.0.0.1", 5672, "RabbitMQ")
    with rabbitmq_vhost() as vhost:
        url = f"amqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"
        deliver_through(settings, tmp_path, url)


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_redis_broker_delivers_every_event(settings, tmp_path):
    require_server("127.0.0.1", 6379, "Redis")
    # A database number of its own, most likely unused by any other test run.
    db = random.randrange(1, 16)
    deliver_through(settings, tmp_path, f"redis://127.0.0.1:6379/{db}")
