"""Delivery runs against real receivers on 127.0.0.1: batches, lanes, leases, held outcomes."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from common.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from common.services.dispatch import process_pending_events
from common.services.emit import emit_event
from common.services.webhooks import endpoint_create
from common.tests.delivery_helpers import verify_both
from common.tests.receivers import Reply

pytestmark = pytest.mark.django_db


def test_batch_size_bounds_a_claim_and_a_run_claims_until_nothing_is_due(receiver):
    from common.services.claims import claim_due_deliveries
    from common.services.recording import record_outcomes

    endpoint_create(url=receiver.url("/a"))
    endpoint_create(url=receiver.url("/b"))
    for i in range(7):
        emit_event(
            event_type="file.stored", aggregate_type="file", aggregate_id=f"f{i}", payload={}
        )
    batch = claim_due_deliveries(batch_size=5)
    assert len({c.event_id for c in batch.claims}) == 5 and len(batch.claims) == 10
    assert batch.more_due
    # Claimed but never sent: given back with their attempt, due again at once.
    record_outcomes(done=[], released=batch.claims)
    assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {("pending", 0)}

    result = process_pending_events(batch_size=5)
    assert result.as_dict() == {"processed": 7, "delivered": 7, "failed": 0, "remaining": 0}
    assert len(receiver.requests) == 14


def test_a_claim_takes_no_more_rows_per_endpoint_than_it_has_free_lanes(receiver):
    from common.services.claims import claim_due_deliveries

    a, _ = endpoint_create(url=receiver.url("/a"))
    b, _ = endpoint_create(url=receiver.url("/b"))
    for i in range(7):
        emit_event(
            event_type="file.stored", aggregate_type="file", aggregate_id=f"f{i}", payload={}
        )
    batch = claim_due_deliveries(batch_size=20, free_lanes={a.id: 2, b.id: 0}, total=10)
    assert [c.endpoint_id for c in batch.claims] == [a.id, a.id]
    assert batch.more_due
    # Endpoints not listed get the full width; ``total`` caps the rest.
    batch = claim_due_deliveries(batch_size=20, total=6)
    assert len(batch.claims) == 6


def test_remaining_counts_due_events_up_to_the_cap():
    from common.services.claims import REMAINING_COUNT_CAP, count_due_events
    from common.services.emit import NewEvent, emit_events

    WebhookEndpoint.objects.create(url="http://127.0.0.1:9/x", secret="whsec_x")
    n = REMAINING_COUNT_CAP + 25
    emit_events(
        event_type="file.stored",
        events=[NewEvent("file", i, {}, f"file:{i}") for i in range(n)],
    )
    assert count_due_events() == REMAINING_COUNT_CAP
    WebhookDelivery.objects.filter(status="pending").exclude(
        event__aggregate_id__in=[str(i) for i in range(n - 10, n)]
    ).update(status="delivered")
    assert count_due_events() == 10


def test_expired_lease_is_claimed_again(receiver):
    endpoint_create(url=receiver.url("/a"))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    # A dispatcher that crashed after claiming: row is "sending" with a lease.
    WebhookDelivery.objects.update(
        status="sending", attempts=1, lease_expires_at=timezone.now() + dt.timedelta(minutes=5)
    )
    assert process_pending_events().processed == 0
    WebhookDelivery.objects.update(lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert process_pending_events().delivered == 1
    d = WebhookDelivery.objects.get()
    assert (d.status, d.attempts) == ("delivered", 2)


def test_connects_to_the_vetted_address_but_keeps_the_host_header(receiver):
    # localhost may resolve to ::1 first (nothing listens there): the vetted
    # addresses are tried in turn, and the request still names the URL's host.
    port = receiver.server.server_address[1]
    endpoint_create(url=f"http://localhost:{port}/named")
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    assert process_pending_events().delivered == 1
    (req,) = receiver.on("/named")
    assert req.headers["host"] == f"localhost:{port}"


def test_non_ascii_payload_is_sent_as_utf8_and_verifies(receiver):
    _endpoint, secret = endpoint_create(url=receiver.url("/u"))
    emit_event(
        event_type="file.stored",
        aggregate_type="file",
        aggregate_id="f1",
        payload={"filename": "Grüße 📄.pdf", "n": [1, 2.5, None]},
    )
    process_pending_events()
    (req,) = receiver.on("/u")
    payload = verify_both(secret, req)
    assert payload["data"] == {"filename": "Grüße 📄.pdf", "n": [1, 2.5, None]}


def test_receivers_cannot_plant_cookies_or_get_compressed_replies(receiver):
    """Sending keeps no cookie jar: what one response sets never reaches a later request."""
    endpoint_create(url=receiver.url("/c"))
    receiver.script("/c", Reply(headers={"set-cookie": "session=planted; Path=/"}))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="c1", payload={})
    process_pending_events()
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="c2", payload={})
    process_pending_events()
    first, second = receiver.on("/c")
    assert "cookie" not in second.headers
    assert "accept-encoding" not in first.headers
    assert first.headers["user-agent"] == "Doorito-Webhooks/1"
    assert WebhookDelivery.objects.filter(status="delivered").count() == 2


def test_a_slow_endpoint_gets_up_to_the_concurrency_bound_at_once(receiver, settings):
    settings.WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT = 6
    endpoint_create(url=receiver.url("/slow"))
    receiver.always("/slow", Reply(delay=0.3))
    for i in range(12):
        emit_event(
            event_type="file.stored", aggregate_type="file", aggregate_id=f"f{i}", payload={}
        )

    result = process_pending_events(batch_size=20)

    assert result.as_dict()["delivered"] == 12
    # Lanes ramp from 2 to the bound while claims wait, and never past it.
    assert receiver.max_in_flight["/slow"] == 6


def test_a_fast_endpoint_is_served_by_few_threads(receiver, settings):
    from common.services.sending import START_LANES

    endpoint, _ = endpoint_create(url=receiver.url("/fast"))
    for i in range(12):
        emit_event(
            event_type="file.stored", aggregate_type="file", aggregate_id=f"f{i}", payload={}
        )

    result = process_pending_events(batch_size=20)

    assert result.delivered == 12
    # Six requests per lane take a few ms here and the first widening comes at
    # 10 ms, so an idle machine stays at 2-4 lanes; a loaded one (other test
    # runs on the same 2 cores) was seen to widen twice, to 8, never to the
    # bound of 10 that a slow receiver reaches (test above).
    lanes = result.lanes[endpoint.id]
    assert START_LANES <= lanes < settings.WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT


def test_a_late_outcome_does_not_overwrite_a_newer_claim(receiver):
    """A request that outlived its lease: its row was claimed again meanwhile."""
    from common.services.claims import claim_due_deliveries
    from common.services.recording import record_outcomes
    from common.services.sending import Outcome

    endpoint_create(url=receiver.url("/a"))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    (first,) = claim_due_deliveries(batch_size=20).claims
    WebhookDelivery.objects.update(lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
    (second,) = claim_due_deliveries(batch_size=20).claims
    assert second.attempts == first.attempts + 1

    record_outcomes(done=[(first, Outcome(ok=False, status_code=500, error="HTTP 500"))])
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "sending" and delivery.attempts == 2
    assert not WebhookDeliveryAttempt.objects.exists()

    record_outcomes(done=[(second, Outcome(ok=True, status_code=200))])
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert list(WebhookDeliveryAttempt.objects.values_list("attempt_number", "status_code")) == [
        (2, 200)
    ]


def test_a_claim_that_waited_past_what_its_lease_covers_is_given_back_unsent(receiver):
    from common.services.claims import claim_due_deliveries
    from common.services.recording import record_outcomes
    from common.services.sending import Lanes

    endpoint_create(url=receiver.url("/a"))
    for i in range(3):
        emit_event(
            event_type="file.stored", aggregate_type="file", aggregate_id=f"f{i}", payload={}
        )
    claims = claim_due_deliveries(batch_size=20).claims
    lanes = Lanes(send_by=-1.0)  # every claim already waited too long
    lanes.add(claims)
    returned = [lanes.done.get(timeout=10) for _ in claims]
    assert all(outcome is None for _, outcome in returned)
    assert receiver.requests == [] and not lanes.started

    record_outcomes(done=[], released=[c for c, _ in returned])
    assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {("pending", 0)}


@pytest.mark.django_db(transaction=True)
def test_outcomes_are_held_through_a_database_error_and_written_once_it_is_back(
    receiver, monkeypatch
):
    """The database fails the first write of a run's outcomes: the run claims
    nothing meanwhile, writes them on its next try a second later, and goes
    on (here: finds nothing more and ends). The request is not repeated."""
    from django.db import OperationalError

    from common.services import dispatch

    endpoint_create(url=receiver.url("/a"))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    real = dispatch.record_outcomes
    calls = []

    def flaky(**kwargs):
        calls.append((time.monotonic(), kwargs))
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(**kwargs)

    monkeypatch.setattr(dispatch, "record_outcomes", flaky)
    result = process_pending_events()
    assert len(calls) == 2
    assert calls[1][0] - calls[0][0] >= 0.9  # tried again a second later
    assert result.delivered == 1 and result.remaining == 0
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "delivered" and delivery.attempts == 1
    assert len(receiver.requests) == 1
    assert WebhookDeliveryAttempt.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_run_that_loses_the_database_for_longer_than_it_holds_ends_with_the_error(
    receiver, monkeypatch
):
    """Past ``HOLD_SECONDS`` the run gives up: the error ends it (the task
    retries), and the claim stays leased, to be sent again when the lease
    runs out."""
    from django.db import OperationalError

    from common.services import dispatch, run_outage

    monkeypatch.setattr(run_outage, "HOLD_SECONDS", 1.5)
    endpoint_create(url=receiver.url("/a"))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})

    def down(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(dispatch, "record_outcomes", down)
    with pytest.raises(OperationalError):
        process_pending_events()
    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.get().status == "sending"
