"""Delivery through real processes: a Celery worker, two concurrent dispatchers."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import pytest
from django.db import transaction

from common.models import OutboxEvent, WebhookDelivery
from common.services.emit import emit_event
from common.services.webhooks import endpoint_create
from common.tests.events import emit_file_stored
from common.tests.receivers import Reply
from conftest import ROOT, kill_process, start_worker, subprocess_env, wait_for_ping, wait_until


def test_commit_is_delivered_by_the_worker_at_once_and_rollback_sends_nothing(
    celery_worker, receiver
):
    endpoint_create(url=receiver.url("/a"))

    with pytest.raises(RuntimeError), transaction.atomic():
        emit_event(
            event_type="file.stored",
            aggregate_type="file",
            aggregate_id="rolled-back",
            payload={"n": 0},
        )
        raise RuntimeError("rollback")

    started = time.monotonic()
    with transaction.atomic():
        event = emit_event(
            event_type="file.stored",
            aggregate_type="file",
            aggregate_id="committed",
            payload={"n": 1},
        )
    (req,) = receiver.wait_for(1, timeout=20)
    # No beat runs here: only the on-commit task can have delivered it, and fast.
    assert time.monotonic() - started < 10
    assert req.headers["webhook-id"] == str(event.id)
    wait_until(lambda: OutboxEvent.objects.get(pk=event.pk).status == "delivered", what="recorded")
    time.sleep(0.5)
    assert len(receiver.requests) == 1
    assert OutboxEvent.objects.count() == 1


@pytest.mark.processes
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_deliver_each_event_endpoint_pair_exactly_once(receiver):
    for path in ("/a", "/b", "/c"):
        endpoint_create(url=receiver.url(path))
        # Slow enough that one dispatcher cannot finish before the other starts.
        receiver.always(path, Reply(delay=0.05))
    with transaction.atomic():
        for i in range(500):
            emit_file_stored(i)
    # No worker consumes the on-commit message: the two dispatchers below are the only ones.
    cmd = [sys.executable, "manage.py", "webhooks", "deliver", "--until-empty"]
    env = subprocess_env()
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode()[-3000:]

    pairs = Counter((r.path, r.headers["webhook-id"]) for r in receiver.requests)
    assert len(pairs) == 1500
    assert max(pairs.values()) == 1
    assert WebhookDelivery.objects.filter(status="delivered").count() == 1500
    assert OutboxEvent.objects.filter(status="delivered").count() == 500
    # Both dispatchers did part of the work. "processed" counts events a run
    # touched: one event's endpoints may be split between the two dispatchers
    # (claims are per delivery row), so the sum can exceed 500 — the
    # exactly-once property is the per-(event, endpoint) count above.
    processed = [int(out.decode().split('"processed": ')[1].split(",")[0]) for out, _ in outputs]
    assert 500 <= sum(processed) <= 1500 and min(processed) > 0


@pytest.mark.processes
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_soft_time_limit_ends_the_run_cleanly_without_duplicates(receiver, tmp_path):
    from boot.celery import app
    from common.tasks import deliver_outbox_events_task

    endpoint_create(url=receiver.url("/slow"))
    receiver.always("/slow", Reply(delay=4))
    with transaction.atomic():
        for i in range(3):
            emit_file_stored(i)
    app.control.purge()  # drop the on-commit message: this test sends its own task

    worker = start_worker(tmp_path, WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT="1")
    try:
        wait_for_ping(worker)
        # Soft limit 2 s (room for a cold child's imports), receiver 4 s, and
        # 12 - 2 - 2 = 8 s of grace for the request in flight.
        result = deliver_outbox_events_task.apply_async(soft_time_limit=2, time_limit=12)
        first = result.get(timeout=40)
        # One request was in flight at the soft limit: it finished and was
        # recorded. With one lane the run never claimed the other two (a
        # claim is a request about to start); the follow-up run it queued on
        # seeing them due may have taken one meanwhile.
        assert {k: first[k] for k in ("processed", "delivered", "failed")} == {
            "processed": 1,
            "delivered": 1,
            "failed": 0,
        }
        assert first["remaining"] in (0, 1, 2)
        assert "Soft time limit" in worker.output()
        # The run re-queued itself because work remained: the rest arrives.
        receiver.wait_for(3, timeout=40)
        wait_until(
            lambda: WebhookDelivery.objects.filter(status="delivered").count() == 3,
            what="all delivered",
        )
    finally:
        kill_process(worker.proc)
    ids = Counter(r.headers["webhook-id"] for r in receiver.requests)
    assert len(ids) == 3 and max(ids.values()) == 1
    assert list(WebhookDelivery.objects.values_list("attempts", flat=True)) == [1, 1, 1]


@pytest.mark.processes
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_retry_is_sent_on_its_schedule_not_at_the_sweep(receiver, tmp_path, settings):
    """Retry due 2 s after a 500, sweep every 5 min: a real worker retries in ~2 s."""
    settings.WEBHOOK_RETRY_SCHEDULE = ["2"]
    worker = start_worker(tmp_path, WEBHOOK_RETRY_SCHEDULE="2", OUTBOX_SWEEP_INTERVAL_MINUTES="5")
    try:
        wait_for_ping(worker)
        endpoint_create(url=receiver.url("/flaky"))
        receiver.script("/flaky", Reply(status=500))
        with transaction.atomic():
            event = emit_event(
                event_type="file.stored",
                aggregate_type="file",
                aggregate_id="retry-on-time",
                payload={},
            )
        first, second = receiver.wait_for(2, "/flaky", timeout=15)
        # 2 s ± the 20 % jitter, plus the worker's wake-up: on time, not minutes late.
        assert 1.4 < second.at - first.at < 5, second.at - first.at
        wait_until(
            lambda: WebhookDelivery.objects.get(event=event).status == "delivered",
            what="the retry recorded",
        )
    finally:
        kill_process(worker.proc)
