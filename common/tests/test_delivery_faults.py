"""Issue #11 with real workers: retries stay on time through a lost message, and
a database outage longer than a lease repeats no request that returned."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time
from collections import Counter

import psycopg
import pytest
from django.db import transaction

from common.models import WebhookDelivery
from common.services.claims import RECLAIM_AFTER_RESTART_SECONDS
from common.services.webhooks import endpoint_create
from common.tests.events import emit_file_stored
from common.tests.receivers import Reply
from conftest import kill_process, start_worker, wait_for_ping, wait_until
from tests.fixtures.clusters import PrivateDatabase
from tests.web import doorito_env, manage

pytestmark = pytest.mark.slow


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_a_retry_whose_message_died_with_its_worker_is_sent_on_time(receiver, tmp_path):
    """The first attempt fails (500), the run queues the retry's ETA message and
    the worker holding it is SIGKILLed: the message is gone (the SQL broker
    consumed it on fetch), no beat runs. The next worker's overdue watch sends
    the retry within seconds of its time (or of the worker's start, if later);
    before it, a run queued a lease after the start found it 26 s late."""
    endpoint_create(url=receiver.url("/flaky"))
    receiver.script("/flaky", Reply(status=500))
    env = {"WEBHOOK_RETRY_SCHEDULE": "6", "OUTBOX_SWEEP_INTERVAL_MINUTES": "5"}
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    worker = start_worker(first_dir, **env)
    try:
        wait_for_ping(worker)
        with transaction.atomic():
            emit_file_stored(0)
        wait_until(
            lambda: WebhookDelivery.objects.filter(status="pending", attempts=1).exists(),
            timeout=30,
            what="the first attempt recorded as failed",
        )
        time.sleep(0.5)  # the retry's message is queued and fetched
        os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(timeout=10)
    finally:
        kill_process(worker.proc)
    delivery = WebhookDelivery.objects.get()
    due = delivery.next_attempt_at
    assert due is not None

    restarted = start_worker(second_dir, **env)
    try:
        wait_for_ping(restarted)
        ready = dt.datetime.now(tz=dt.UTC)
        receiver.wait_for(2, "/flaky", timeout=30)
        wait_until(
            lambda: WebhookDelivery.objects.filter(status="delivered").exists(),
            timeout=10,
            what="the retry recorded delivered",
        )
    finally:
        kill_process(restarted.proc)
    sent_at = dt.datetime.fromtimestamp(receiver.on("/flaky")[1].at, tz=dt.UTC)
    late = (sent_at - max(due, ready)).total_seconds()
    print(f"retry sent {late:.2f} s after max(its time, the new worker answering a ping)")
    assert late <= 3.0
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert delivery.attempts == 2


def _deliveries(cluster: PrivateDatabase) -> Counter[str]:
    with psycopg.connect(cluster.dsn, connect_timeout=3, autocommit=True) as conn:
        rows = conn.execute("SELECT status, count(*) FROM common_webhookdelivery GROUP BY 1")
        return Counter(dict(rows.fetchall()))


@pytest.mark.processes
def test_outcomes_held_through_an_outage_longer_than_the_lease_are_recorded_once(
    receiver, tmp_path, private_database
):
    """A private cluster is stopped while ten requests are open at the receiver
    and stays down past their leases (8 s timeout + 10 s). The requests return
    during the outage (the receiver answers once the stop has returned); the
    worker holds their outcomes and writes them when
    the database is back, and no run takes those claims again first (expired
    leases wait ``RECLAIM_AFTER_RESTART_SECONDS`` after a restart). Before,
    the holder gave up at the lease and every one of them was sent twice."""
    cluster = private_database
    broker = cluster.broker_url
    env = doorito_env(
        cluster.url,
        tmp_path / "media",
        CELERY_TASK_ALWAYS_EAGER="false",
        CELERY_BROKER_URL=broker,
        WEBHOOK_TIMEOUT_SECONDS="8",
    )
    answer = threading.Event()
    receiver.always("/hold", Reply(gate=answer))
    worker = start_worker(
        tmp_path,
        DATABASE_URL=cluster.url,
        CELERY_BROKER_URL=broker,
        WEBHOOK_TIMEOUT_SECONDS="8",
        DATABASE_CONN_MAX_AGE="60",
    )
    try:
        manage(
            env,
            "shell",
            "-c",
            "from django.db import transaction\n"
            "from common.services.webhooks import endpoint_create\n"
            "from common.tests.events import emit_file_stored\n"
            f"endpoint_create(url={receiver.url('/hold')!r})\n"
            "with transaction.atomic():\n"
            "    [emit_file_stored(i) for i in range(10)]\n",
        )
        receiver.wait_for(10, "/hold", timeout=60)
        cluster.stop()
        stopped_at = time.monotonic()
        answer.set()  # the requests return while the database is down
        time.sleep(8 + 10 + 2)  # past every lease (taken before the stop)
        cluster.start()
        back_at = time.monotonic()
        wait_until(
            lambda: _deliveries(cluster)["delivered"] == 10,
            timeout=60,
            what="all ten recorded delivered",
        )
        recorded_after = time.monotonic() - back_at
        time.sleep(RECLAIM_AFTER_RESTART_SECONDS + 3)  # a re-claim would have sent by now
        assert worker.proc.poll() is None, worker.output()[-3000:]
    finally:
        kill_process(worker.proc)
    sent = Counter(r.headers["webhook-id"] for r in receiver.on("/hold"))
    print(
        f"down {back_at - stopped_at:.1f} s; all recorded {recorded_after:.1f} s after the "
        f"database was back; requests per event: {sorted(sent.values())}"
    )
    assert len(sent) == 10
    assert max(sent.values()) == 1, sent
    assert "the delivery run goes on" in worker.output()
    assert recorded_after < RECLAIM_AFTER_RESTART_SECONDS
