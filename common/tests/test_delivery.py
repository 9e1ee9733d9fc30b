"""The dispatcher against real HTTP receivers on 127.0.0.1 (in-process runs)."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook

from common.models import OutboxEvent, WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from common.services.dispatch import process_pending_events
from common.services.emit import emit_event
from common.services.webhooks import endpoint_create, endpoint_rotate_secret
from common.tests.receivers import Reply

pytestmark = pytest.mark.django_db


def _make_due(**filters) -> None:
    WebhookDelivery.objects.filter(status="pending", **filters).update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )


def _verify_both(secret: str, req) -> dict:
    headers = {k: req.headers[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    got = StandardWebhook(secret).verify(req.body, headers)
    SvixWebhook(secret).verify(req.body, headers)  # raises WebhookVerificationError if invalid
    return got


def test_request_is_a_standard_webhook_verifiable_by_both_libraries(receiver):
    _endpoint, secret = endpoint_create(url=receiver.url("/a"))
    assert secret.startswith("whsec_") and len(secret) == 6 + 44
    event = emit_event(
        event_type="file.stored",
        aggregate_type="file",
        aggregate_id="f1",
        payload={"id": "f1", "size": 3},
    )

    result = process_pending_events(batch_size=20)

    assert result.as_dict() == {"processed": 1, "delivered": 1, "failed": 0, "remaining": 0}
    (req,) = receiver.on("/a")
    payload = _verify_both(secret, req)
    assert set(payload) == {"type", "timestamp", "data"}
    assert payload["type"] == "file.stored" and payload["data"] == {"id": "f1", "size": 3}
    assert req.headers["webhook-id"] == str(event.id)
    assert req.headers["content-type"] == "application/json"
    assert json.loads(req.body) == payload
    d = WebhookDelivery.objects.get()
    assert (d.status, d.attempts, d.last_status_code) == ("delivered", 1, 200)
    assert OutboxEvent.objects.get().status == "delivered"


def test_rotation_overlap_sends_both_signatures_and_both_verify(receiver):
    endpoint, old = endpoint_create(url=receiver.url("/a"))
    new = endpoint_rotate_secret(endpoint=endpoint)
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    process_pending_events()

    (req,) = receiver.on("/a")
    sigs = req.headers["webhook-signature"].split(" ")
    assert len(sigs) == 2 and all(s.startswith("v1,") for s in sigs)
    assert "  " not in req.headers["webhook-signature"]
    _verify_both(old, req)
    _verify_both(new, req)

    # After the overlap only the new secret signs.
    endpoint.refresh_from_db()
    endpoint.previous_secrets = [
        {**e, "expires_at": (timezone.now() - dt.timedelta(seconds=1)).isoformat()}
        for e in endpoint.previous_secrets
    ]
    endpoint.save(update_fields=["previous_secrets"])
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f2", payload={})
    process_pending_events()
    req2 = receiver.on("/a")[1]
    assert len(req2.headers["webhook-signature"].split(" ")) == 1
    _verify_both(new, req2)
    with pytest.raises(Exception):  # noqa: B017 - either library's verification error
        StandardWebhook(old).verify(req2.body, req2.headers)


def test_failing_endpoint_is_retried_alone_per_schedule_then_delivered(receiver):
    bad, _ = endpoint_create(url=receiver.url("/bad"))
    good, _ = endpoint_create(url=receiver.url("/good"))
    receiver.script("/bad", Reply(500))
    event = emit_event(
        event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={}
    )

    before = timezone.now()
    result = process_pending_events()
    after = timezone.now()

    assert result.as_dict() == {"processed": 1, "delivered": 0, "failed": 0, "remaining": 0}
    d_bad = WebhookDelivery.objects.get(endpoint=bad)
    assert (d_bad.status, d_bad.attempts, d_bad.last_status_code) == ("pending", 1, 500)
    # First retry after 5 s ±20 %.
    assert before + dt.timedelta(seconds=4) <= d_bad.next_attempt_at
    assert d_bad.next_attempt_at <= after + dt.timedelta(seconds=6)
    assert WebhookDelivery.objects.get(endpoint=good).status == "delivered"
    ev = OutboxEvent.objects.get(pk=event.pk)
    assert ev.status == "pending" and ev.next_attempt_at == d_bad.next_attempt_at

    # Not due yet: nothing happens.
    assert process_pending_events().processed == 0
    _make_due()
    result = process_pending_events()
    assert result.as_dict() == {"processed": 1, "delivered": 1, "failed": 0, "remaining": 0}
    assert len(receiver.on("/good")) == 1
    assert len(receiver.on("/bad")) == 2
    d_bad.refresh_from_db()
    assert (d_bad.status, d_bad.attempts) == ("delivered", 2)
    assert OutboxEvent.objects.get(pk=event.pk).status == "delivered"
    bad.refresh_from_db()
    assert bad.failing_since is None


def test_second_retry_waits_five_minutes_and_exhausting_attempts_fails(receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    endpoint_create(url=receiver.url("/bad"))
    receiver.always("/bad", Reply(500, body=b"x" * 10_000))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    process_pending_events()
    _make_due()
    now = timezone.now()
    process_pending_events()
    d = WebhookDelivery.objects.get()
    assert d.attempts == 2
    assert now + dt.timedelta(seconds=240) <= d.next_attempt_at <= now + dt.timedelta(seconds=361)
    assert len(d.last_response) == 4096
    _make_due()
    result = process_pending_events()
    assert result.as_dict() == {"processed": 1, "delivered": 0, "failed": 1, "remaining": 0}
    d.refresh_from_db()
    assert (d.status, d.attempts, d.next_attempt_at) == ("failed", 3, None)
    ev = OutboxEvent.objects.get()
    assert ev.status == "failed" and ev.attempts == 3 and "HTTP 500" in ev.last_error
    assert len(receiver.on("/bad")) == 3


def test_410_disables_the_endpoint(receiver):
    gone, _ = endpoint_create(url=receiver.url("/gone"))
    receiver.always("/gone", Reply(410))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f2", payload={})
    result = process_pending_events(batch_size=1)
    # The run claims the second event while the first request is in flight
    # (one event per claim, two lanes), or the disabling fails it unsent.
    assert result.as_dict()["failed"] == result.as_dict()["processed"] >= 1
    assert result.remaining == 0
    gone.refresh_from_db()
    assert not gone.is_active and "410" in gone.disabled_reason
    # Every delivery failed with the endpoint; no more requests.
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"failed"}
    sent = len(receiver.on("/gone"))
    assert process_pending_events().processed == 0
    assert len(receiver.on("/gone")) == sent <= 2
    # New events no longer go to it.
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f3", payload={})
    assert WebhookDelivery.objects.count() == 2


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(receiver, status):
    endpoint_create(url=receiver.url("/busy"))
    receiver.script("/busy", Reply(status, headers={"Retry-After": "120"}))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    now = timezone.now()
    process_pending_events()
    d = WebhookDelivery.objects.get()
    assert d.status == "pending"
    assert now + dt.timedelta(seconds=119) <= d.next_attempt_at <= now + dt.timedelta(seconds=122)


def test_retry_after_is_clamped(receiver):
    endpoint_create(url=receiver.url("/busy"))
    receiver.script("/busy", Reply(429, headers={"Retry-After": str(10 * 86400)}))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    now = timezone.now()
    process_pending_events()
    d = WebhookDelivery.objects.get()
    assert d.next_attempt_at <= now + dt.timedelta(hours=24, seconds=5)


def test_redirect_is_a_failure_and_not_followed(receiver):
    endpoint_create(url=receiver.url("/moved"))
    receiver.always("/moved", Reply(302, headers={"Location": receiver.url("/elsewhere")}))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    process_pending_events()
    d = WebhookDelivery.objects.get()
    assert d.status == "pending" and d.last_status_code == 302
    assert "redirect" in d.last_error
    assert receiver.on("/elsewhere") == []


def test_network_error_is_a_failed_attempt(receiver):
    _endpoint, _ = endpoint_create(url=receiver.url("/a"))
    receiver.close()
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    process_pending_events()
    d = WebhookDelivery.objects.get()
    assert d.status == "pending" and d.attempts == 1 and d.last_status_code is None
    assert "ConnectError" in d.last_error


def test_ssrf_refused_at_send_time_is_recorded(receiver, settings):
    endpoint_create(url=receiver.url("/a"))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    process_pending_events()
    d = WebhookDelivery.objects.get()
    assert d.status == "pending"
    assert d.last_error == "refused: 127.0.0.1 is a loopback address"
    assert receiver.requests == []


def test_endpoint_failing_for_days_is_disabled(receiver):
    endpoint, _ = endpoint_create(url=receiver.url("/bad"))
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now() - dt.timedelta(days=6)
    )
    receiver.always("/bad", Reply(500))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    process_pending_events()
    endpoint.refresh_from_db()
    assert not endpoint.is_active and "5 days" in endpoint.disabled_reason
    assert WebhookDelivery.objects.get().status == "failed"


def test_subscription_filters_and_disabled_endpoint_gets_nothing(receiver):
    endpoint_create(url=receiver.url("/batches"), event_types=["batch.completed"])
    endpoint_create(url=receiver.url("/all"))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    emit_event(event_type="batch.completed", aggregate_type="batch", aggregate_id="b1", payload={})
    result = process_pending_events()
    assert result.processed == 2
    assert len(receiver.on("/all")) == 2
    assert [json.loads(r.body)["type"] for r in receiver.on("/batches")] == ["batch.completed"]


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
    payload = _verify_both(secret, req)
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

    from common.services import dispatch

    monkeypatch.setattr(dispatch, "HOLD_SECONDS", 1.5)
    endpoint_create(url=receiver.url("/a"))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})

    def down(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(dispatch, "record_outcomes", down)
    with pytest.raises(OperationalError):
        process_pending_events()
    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.get().status == "sending"
