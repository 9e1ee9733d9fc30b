"""Acceptance of issue #11 with real worker processes: endpoints are isolated
from each other, and a killed worker's deliveries come back within a lease,
repeating only what was in flight."""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections import Counter

import pytest
from django.db import transaction

from common.models import WebhookDelivery
from common.services.claims import lease_seconds
from common.services.webhooks import endpoint_create
from common.tests.events import emit_file_stored
from common.tests.receivers import Reply
from conftest import kill_process, start_worker, wait_for_ping, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.mark.processes
def test_a_25_second_endpoint_does_not_delay_another_endpoint(receiver, tmp_path):
    """Both endpoints get every event; the slow one never answers within the
    15 s timeout. The healthy one's commit→receipt stays within 2 s (before:
    p50 48 s, p99 95 s, because every run waited for its slowest request)."""
    endpoint_create(url=receiver.url("/slow"))
    endpoint_create(url=receiver.url("/fast"))
    receiver.always("/slow", Reply(delay=25))
    worker = start_worker(tmp_path)  # -c 2: both children end up holding slow requests
    try:
        wait_for_ping(worker)
        committed: dict[str, float] = {}
        for i in range(40):
            with transaction.atomic():
                event = emit_file_stored(i)
            committed[str(event.id)] = time.time()
            time.sleep(0.25)
        fast = receiver.wait_for(40, "/fast", timeout=30)
        slow_in_flight = receiver.max_in_flight["/slow"]
    finally:
        kill_process(worker.proc)
    latencies = sorted(r.at - committed[r.headers["webhook-id"]] for r in fast)
    print(
        f"healthy endpoint commit→receipt: p50 {statistics.median(latencies):.3f} s, "
        f"max {latencies[-1]:.3f} s; slow endpoint at most {slow_in_flight} in flight"
    )
    # The slow endpoint was busy the whole time: every lane it could get was
    # held by a request that would not return within the timeout.
    assert slow_in_flight >= 10
    assert len({r.headers["webhook-id"] for r in fast}) == 40
    assert latencies[-1] <= 2.0, latencies


@pytest.mark.processes
def test_a_killed_worker_repeats_only_what_was_in_flight_and_recovers_within_a_lease(
    receiver, tmp_path
):
    """SIGKILL to the worker's process group mid-run, then a new worker.

    Every delivery ends delivered about a lease after the restart (the killed
    worker's claims come due, and the new worker's overdue watch queues a run
    for them within a second), and
    the requests sent twice are the ones in flight at the kill: none whose
    outcome had been recorded. "In flight" counts from the worker's side: a
    reply written in the last 0.25 s may not have reached the worker or been
    flushed (up to 20 ms after its request returns) when it died.
    """
    endpoint_create(url=receiver.url("/hold"))
    receiver.always("/hold", Reply(delay=1.0))
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    worker = start_worker(first_dir)
    try:
        wait_for_ping(worker)
        with transaction.atomic():
            for i in range(60):
                emit_file_stored(i)
        receiver.wait_for(25, "/hold", timeout=60)
        # Half way through the second round of held requests: the first
        # round's answers have had half a second to be recorded.
        time.sleep(0.5)
        os.killpg(worker.proc.pid, signal.SIGKILL)
        killed_at = time.time()
        worker.proc.wait(timeout=10)
    finally:
        kill_process(worker.proc)
    time.sleep(1.5)  # let the receiver's held requests end (their writes fail)
    in_flight = {r.headers["webhook-id"] for r in receiver.in_flight_at(killed_at, margin=0.25)}
    unanswered = len(receiver.in_flight_at(killed_at))
    before = {r.headers["webhook-id"] for r in receiver.requests if r.at <= killed_at}
    stuck = WebhookDelivery.objects.filter(status="sending").count()

    restarted = start_worker(second_dir)
    try:
        restarted_at = time.monotonic()
        took = wait_until(
            lambda: WebhookDelivery.objects.filter(status="delivered").count() == 60,
            timeout=lease_seconds() + 60,
            what="every delivery delivered after the restart",
        )
        recovered_after = time.monotonic() - restarted_at
    finally:
        kill_process(restarted.proc)

    sent = Counter(r.headers["webhook-id"] for r in receiver.requests)
    twice = {event_id for event_id, n in sent.items() if n > 1}
    print(
        f"kill: {len(before)} sent, {unanswered} unanswered, {len(in_flight)} in flight "
        f"(with answers of the last 0.25 s), {stuck} rows left sending; "
        f"all 60 delivered {recovered_after:.1f} s after the restart ({took:.1f} s); "
        f"{len(twice)} sent twice"
    )
    assert len(sent) == 60 and max(sent.values()) <= 2
    assert twice <= in_flight, twice - in_flight
    assert len(twice) <= len(in_flight)
    # Recovered by the new worker's overdue watch, not by the sweep (minutes):
    # the lease plus the new worker's start and the sends.
    assert recovered_after < lease_seconds() + 40
