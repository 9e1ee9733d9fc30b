"""The attempt history: one row per request, written in bulk with the outcomes.

Real runs of the dispatcher against the HTTP receiver on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import socket

import pytest
from django.utils import timezone

from common.models import OutboxEvent, WebhookDelivery, WebhookDeliveryAttempt
from common.services import recording as recording_module
from common.services.dispatch import process_pending_events
from common.services.emit import emit_event
from common.services.retention import cleanup_delivered_events
from common.services.webhooks import endpoint_create, endpoint_delete
from common.tests.receivers import Reply

pytestmark = pytest.mark.django_db


def _make_due() -> None:
    WebhookDelivery.objects.filter(status="pending").update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_failure_then_a_success_leave_two_attempts(receiver):
    receiver.script(
        "/a",
        Reply(status=500, body=b"upstream exploded", headers={"x-request-id": "r-1"}),
        Reply(status=200, body=b"thanks", headers={"x-request-id": "r-2"}),
    )
    endpoint_create(url=receiver.url("/a"))
    emit_event(
        event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={"id": "f1"}
    )

    process_pending_events()
    _make_due()
    process_pending_events()

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    first, second = WebhookDeliveryAttempt.objects.filter(delivery=delivery).order_by("created_at")
    assert (first.attempt_number, first.status_code) == (1, 500)
    assert first.response_excerpt == "upstream exploded"
    assert first.error == "HTTP 500" and first.error_class == ""
    assert first.response_headers["x-request-id"] == "r-1"
    assert first.response_headers["content-length"] == "17"
    assert not first.succeeded
    assert (second.attempt_number, second.status_code) == (2, 200)
    assert second.response_excerpt == "thanks" and second.error == ""
    assert second.response_headers["x-request-id"] == "r-2"
    assert second.succeeded
    assert second.created_at > first.created_at
    assert all(a.duration_ms >= 0 for a in (first, second))
    # The delivery's "last" fields and the newest attempt agree.
    assert delivery.last_status_code == second.status_code
    assert delivery.last_response == second.response_excerpt


def test_attempts_after_a_resend_are_numbered_in_order(receiver, settings):
    """#23.4: a re-send restarts the budget, not the numbering ("#1", "#1" before)."""
    from common.selectors import delivery_attempt_list, delivery_list
    from common.services.resend import delivery_resend

    settings.WEBHOOK_MAX_ATTEMPTS = 1
    receiver.script("/a", Reply(status=500), Reply(status=200))
    endpoint_create(url=receiver.url("/a"))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    process_pending_events()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed"
    delivery_resend(delivery=delivery)
    process_pending_events()

    newest, oldest = delivery_attempt_list(delivery=delivery)
    assert [(a.number, a.attempt_number, a.status_code) for a in (oldest, newest)] == [
        (1, 1, 500),
        (2, 1, 200),
    ]
    [with_recent] = delivery_list(with_attempts=True)
    assert [a.number for a in with_recent.recent_attempts] == [2, 1]


def test_a_network_error_is_an_attempt_with_its_class_and_message(receiver):
    endpoint_create(url=f"http://127.0.0.1:{_closed_port()}/hook")
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})

    process_pending_events()

    attempt = WebhookDeliveryAttempt.objects.get()
    assert attempt.attempt_number == 1
    assert attempt.status_code is None
    assert attempt.error_class == "ConnectError"
    assert attempt.error.startswith("ConnectError: ")
    assert attempt.response_excerpt == "" and attempt.response_headers == {}
    assert WebhookDelivery.objects.get().status == "pending"  # retried later


def test_a_skipped_claim_is_not_an_attempt(receiver):
    endpoint, _ = endpoint_create(url=receiver.url("/a"))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    # Disabled between the event and the run (not through the service, which
    # would fail the pending delivery first): the claim is skipped, not sent.
    type(endpoint).objects.filter(pk=endpoint.pk).update(is_active=False)

    process_pending_events()

    assert WebhookDelivery.objects.get().status == "failed"
    assert receiver.requests == []
    assert not WebhookDeliveryAttempt.objects.exists()


def test_every_attempt_of_a_run_is_written_by_the_outcomes_statement(receiver, monkeypatch):
    receiver.script("/b", Reply(status=503))
    endpoint_create(url=receiver.url("/a"))
    endpoint_create(url=receiver.url("/b"))
    for n in range(5):
        emit_event(
            event_type="file.stored", aggregate_type="file", aggregate_id=f"f{n}", payload={"n": n}
        )
    statements: list[str] = []
    real = recording_module.fetch_all

    def spy(sql, params, **kwargs):
        statements.append(sql)
        return real(sql, params, **kwargs)

    monkeypatch.setattr(recording_module, "fetch_all", spy)

    process_pending_events(batch_size=20)

    # The statement that writes outcomes writes their history rows: never one
    # of its own (a run writes outcomes a handful at a time, as they return).
    inserts = [s for s in statements if "INSERT INTO common_webhookdeliveryattempt" in s]
    assert inserts and all("UPDATE common_webhookdelivery d SET" in s for s in inserts)
    assert WebhookDeliveryAttempt.objects.count() == 10
    assert WebhookDeliveryAttempt.objects.filter(status_code=503).count() == 1
    assert len(set(WebhookDeliveryAttempt.objects.values_list("created_at", flat=True))) == len(
        inserts
    )


def test_excerpt_and_headers_are_capped_and_storable(receiver):
    # A NUL in the answer must not make the run's bulk write fail (PostgreSQL
    # text cannot hold it); the body and the headers are capped.
    many = {f"x-h{n:02d}": "v" * 10 for n in range(30)}
    receiver.script("/a", Reply(status=200, body=b"ok\x00" + b"y" * 10_000, headers=many))
    receiver.script("/a", Reply(status=200, headers={"x-big": "z" * 3000, "x-bigger": "w" * 3000}))
    endpoint_create(url=receiver.url("/a"))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f2", payload={})

    process_pending_events()

    assert WebhookDelivery.objects.filter(status="delivered").count() == 2
    attempts = {len(a.response_headers): a for a in WebhookDeliveryAttempt.objects.all()}
    capped = attempts[20]
    assert len(capped.response_excerpt) == 4096
    assert capped.response_excerpt.startswith("ok\ufffdyyy")
    budget = next(a for n, a in attempts.items() if n != 20)
    assert "x-big" in budget.response_headers and "x-bigger" not in budget.response_headers


def test_retention_cleanup_deletes_attempts_with_their_events(receiver):
    receiver.script("/a", Reply(status=500))
    endpoint_create(url=receiver.url("/a"))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="old", payload={})
    process_pending_events()
    _make_due()
    process_pending_events()
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="new", payload={})
    process_pending_events()
    assert WebhookDeliveryAttempt.objects.count() == 3
    OutboxEvent.objects.filter(aggregate_id="old").update(
        created_at=timezone.now() - dt.timedelta(hours=200)
    )

    result = cleanup_delivered_events(retention_hours=168)

    assert (result.deleted, result.remaining) == (1, 0)
    kept = WebhookDeliveryAttempt.objects.get()
    assert kept.delivery.event.aggregate_id == "new"


def test_deleting_an_endpoint_deletes_its_attempts(receiver):
    endpoint, _ = endpoint_create(url=receiver.url("/a"))
    other, _ = endpoint_create(url=receiver.url("/b"))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    process_pending_events()
    assert WebhookDeliveryAttempt.objects.count() == 2

    endpoint_delete(endpoint=endpoint)

    assert list(WebhookDeliveryAttempt.objects.values_list("delivery__endpoint", flat=True)) == [
        other.id
    ]


def test_admin_shows_a_deliverys_attempts_read_only(admin_client, receiver, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    receiver.script("/a", Reply(status=500, body=b"first answer"))
    endpoint_create(url=receiver.url("/a"))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    process_pending_events()
    _make_due()
    process_pending_events()
    delivery = WebhookDelivery.objects.get()

    page = admin_client.get(f"/admin/common/webhookdelivery/{delivery.id}/change/")

    assert page.status_code == 200
    assert b"first answer" in page.content
    assert page.content.count(b'class="field-attempt_number"') == 2
    # Read-only: the history has no inputs.
    assert b'name="attempt_log-0-status_code"' not in page.content
    assert b'name="attempt_log-0-response_excerpt"' not in page.content
