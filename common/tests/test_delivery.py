"""The dispatcher against real HTTP receivers on 127.0.0.1 (in-process runs)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

from common.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from common.services.dispatch import process_pending_events
from common.services.emit import emit_event
from common.services.webhooks import endpoint_create, endpoint_rotate_secret
from common.tests.delivery_helpers import make_due, verify_both
from common.tests.receivers import Reply

pytestmark = pytest.mark.django_db


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
    payload = verify_both(secret, req)
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
    verify_both(old, req)
    verify_both(new, req)

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
    verify_both(new, req2)
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
    make_due()
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
    make_due()
    now = timezone.now()
    process_pending_events()
    d = WebhookDelivery.objects.get()
    assert d.attempts == 2
    assert now + dt.timedelta(seconds=240) <= d.next_attempt_at <= now + dt.timedelta(seconds=361)
    assert len(d.last_response) == 4096
    make_due()
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
