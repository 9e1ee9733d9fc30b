"""Cleanup, re-sends, test events and the `webhooks` command."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from common.exceptions import ConflictError, ValidationError
from common.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from common.services.dispatch import process_pending_events
from common.services.emit import emit_event
from common.services.resend import deliveries_resend_failed, delivery_resend
from common.services.webhooks import (
    endpoint_create,
    endpoint_delete,
    endpoint_send_test_event,
    endpoint_update,
)
from common.tasks import cleanup_delivered_outbox_events_task, deliver_outbox_events_task
from common.tests.receivers import Reply

pytestmark = pytest.mark.django_db


def _events(n: int, *, status: str, age_hours: float, prefix: str) -> None:
    now = timezone.now()
    OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(
                aggregate_type="file",
                aggregate_id=f"{prefix}{i}",
                event_type="file.stored",
                idempotency_key=f"{prefix}{i}",
                status=status,
            )
            for i in range(n)
        ]
    )
    OutboxEvent.objects.filter(idempotency_key__startswith=prefix).update(
        created_at=now - dt.timedelta(hours=age_hours)
    )


def test_cleanup_deletes_old_terminal_events_in_batches_of_1000(receiver):
    endpoint, _ = endpoint_create(url=receiver.url("/a"))
    _events(2000, status="delivered", age_hours=200, prefix="old-d-")
    _events(500, status="failed", age_hours=200, prefix="old-f-")
    _events(3, status="pending", age_hours=500, prefix="old-p-")
    _events(4, status="delivered", age_hours=1, prefix="new-d-")
    old = OutboxEvent.objects.filter(idempotency_key="old-d-0").get()
    WebhookDelivery.objects.create(event=old, endpoint=endpoint, status="delivered")
    # Still owed to an endpoint (a pending delivery): kept however old.
    for owed in OutboxEvent.objects.filter(idempotency_key__startswith="old-p-"):
        WebhookDelivery.objects.create(event=owed, endpoint=endpoint, status="pending")

    results = [cleanup_delivered_outbox_events_task.apply().get() for _ in range(4)]

    assert results == [
        {"deleted": 1000, "remaining": 1500},
        {"deleted": 1000, "remaining": 500},
        {"deleted": 500, "remaining": 0},
        {"deleted": 0, "remaining": 0},
    ]
    assert OutboxEvent.objects.filter(status="pending").count() == 3
    assert OutboxEvent.objects.filter(idempotency_key__startswith="new-d-").count() == 4
    assert not WebhookDelivery.objects.exclude(status="pending").exists()


def test_cleanup_ends_and_deletes_old_events_stuck_pending_with_nothing_owed(receiver):
    """#23.3: pending events that owe nothing any more are cleaned up by retention."""
    endpoint, _ = endpoint_create(url=receiver.url("/a"))
    _events(3, status="pending", age_hours=500, prefix="orphan-")  # no delivery left
    _events(1, status="pending", age_hours=500, prefix="ended-")
    ended = OutboxEvent.objects.get(idempotency_key="ended-0")
    WebhookDelivery.objects.create(event=ended, endpoint=endpoint, status="failed")
    _events(1, status="pending", age_hours=500, prefix="owed-")
    owed = OutboxEvent.objects.get(idempotency_key="owed-0")
    WebhookDelivery.objects.create(event=owed, endpoint=endpoint, status="pending")
    _events(2, status="no_subscribers", age_hours=200, prefix="nobody-")
    _events(1, status="no_subscribers", age_hours=1, prefix="recent-")

    assert cleanup_delivered_outbox_events_task.apply().get() == {"deleted": 6, "remaining": 0}
    assert list(OutboxEvent.objects.values_list("idempotency_key", flat=True).order_by("id")) in (
        ["owed-0", "recent-0"],
        ["recent-0", "owed-0"],
    )


def test_cleanup_honours_retention_setting(settings):
    settings.OUTBOX_RETENTION_HOURS = 2
    _events(5, status="delivered", age_hours=3, prefix="x-")
    assert cleanup_delivered_outbox_events_task.apply().get() == {"deleted": 5, "remaining": 0}


def test_deliver_task_returns_the_seed_format(receiver):
    endpoint_create(url=receiver.url("/a"))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    assert deliver_outbox_events_task.apply().get() == {
        "processed": 1,
        "delivered": 1,
        "failed": 0,
        "remaining": 0,
    }


def _failed_delivery(receiver, settings) -> WebhookDelivery:
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    endpoint_create(url=receiver.url("/a"))
    receiver.script("/a", Reply(500))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    process_pending_events()
    d = WebhookDelivery.objects.get()
    assert d.status == "failed"
    return d


def test_resend_one_failed_delivery(receiver, settings):
    d = _failed_delivery(receiver, settings)
    delivery_resend(delivery=d)
    d.refresh_from_db()
    assert (d.status, d.attempts) == ("pending", 0)
    assert OutboxEvent.objects.get().status == "pending"
    process_pending_events()
    d.refresh_from_db()
    assert d.status == "delivered"
    reqs = receiver.on("/a")
    assert len(reqs) == 2 and reqs[0].headers["webhook-id"] == reqs[1].headers["webhook-id"]
    assert OutboxEvent.objects.get().status == "delivered"


def test_resend_refuses_in_flight_and_disabled(receiver, settings):
    d = _failed_delivery(receiver, settings)
    WebhookDelivery.objects.filter(pk=d.pk).update(status="sending")
    with pytest.raises(ConflictError):
        delivery_resend(delivery=d)
    WebhookDelivery.objects.filter(pk=d.pk).update(status="failed")
    endpoint_update(endpoint=d.endpoint, is_active=False)
    with pytest.raises(ConflictError):
        delivery_resend(delivery=d)


def test_resend_all_failed_since(receiver, settings):
    d = _failed_delivery(receiver, settings)
    assert deliveries_resend_failed(since=timezone.now() + dt.timedelta(minutes=1)) == 0
    assert deliveries_resend_failed(since=timezone.now() - dt.timedelta(minutes=1)) == 1
    d.refresh_from_db()
    assert d.status == "pending"


def _failed_deliveries(n: int) -> None:
    endpoint_create(url="http://127.0.0.1:9/hook")
    for i in range(n):
        emit_event(
            event_type="file.stored", aggregate_type="file", aggregate_id=f"f{i}", payload={}
        )
    WebhookDelivery.objects.update(status="failed", next_attempt_at=None)


def test_resend_all_failed_since_works_in_chunks_and_reports_progress() -> None:
    _failed_deliveries(5)
    seen: list[tuple[int, int]] = []
    count = deliveries_resend_failed(
        since=timezone.now() - dt.timedelta(minutes=1),
        chunk_size=2,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert count == 5
    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"pending"}


class Terminal(StringIO):
    """Captured output that says it is a terminal, as a shell's would."""

    def isatty(self) -> bool:
        return True


def test_command_resend_shows_progress_on_a_terminal_only():
    _failed_deliveries(3)
    out = Terminal()
    call_command("webhooks", "resend", "--failed-since", "1h", stdout=out)
    assert "\rre-sending: 3 of 3" in out.getvalue()
    assert out.getvalue().endswith("\n3 failed deliveries queued for re-sending\n")

    WebhookDelivery.objects.update(status="failed", next_attempt_at=None)
    assert _cmd("resend", "--failed-since", "1h") == "3 failed deliveries queued for re-sending\n"


def test_test_event_goes_to_one_endpoint_only(receiver):
    target, _secret = endpoint_create(url=receiver.url("/t"))
    endpoint_create(url=receiver.url("/other"))
    event = endpoint_send_test_event(endpoint=target)
    assert event.event_type == "webhook.test"
    process_pending_events()
    (req,) = receiver.requests
    assert req.path == "/t" and json.loads(req.body)["type"] == "webhook.test"


def test_disable_and_reenable_endpoint(receiver):
    endpoint, _ = endpoint_create(url=receiver.url("/a"))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    endpoint_update(endpoint=endpoint, is_active=False)
    assert WebhookDelivery.objects.get().status == "failed"
    assert OutboxEvent.objects.get().status == "failed"
    endpoint = endpoint_update(endpoint=endpoint, is_active=True)
    assert endpoint.is_active and endpoint.disabled_reason == ""


def test_endpoint_input_is_validated():
    with pytest.raises(ValidationError):
        endpoint_create(url="http://127.0.0.1:9/", event_types=["nope"])
    with pytest.raises(ValidationError):
        endpoint_create(url="")
    assert not WebhookEndpoint.objects.exists()


def test_endpoint_delete_lets_shared_events_finish(receiver):
    _a, _ = endpoint_create(url=receiver.url("/a"))
    b, _ = endpoint_create(url=receiver.url("/b"))
    receiver.script("/b", Reply(500))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    process_pending_events()
    assert OutboxEvent.objects.get().status == "pending"
    endpoint_delete(endpoint=b)
    assert OutboxEvent.objects.get().status == "delivered"


def test_event_whose_only_endpoint_is_deleted_does_not_stay_pending(receiver):
    """#23.3: it used to keep 'pending' for ever (no delivery left to summarise)."""
    only, _ = endpoint_create(url=receiver.url("/a"))
    receiver.script("/a", Reply(500))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    process_pending_events()
    assert OutboxEvent.objects.get().status == "pending"
    endpoint_delete(endpoint=only)
    event = OutboxEvent.objects.get()
    assert event.status == "no_subscribers"
    assert event.get_status_display() == "No subscribers"
    assert (event.delivered_at, event.next_attempt_at) == (None, None)


def test_delivered_event_stays_delivered_when_its_endpoint_is_deleted_later(receiver):
    only, _ = endpoint_create(url=receiver.url("/a"))
    emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="f1", payload={})
    process_pending_events()
    endpoint_delete(endpoint=only)
    assert OutboxEvent.objects.get().status == "delivered"


def _cmd(*args) -> str:
    out = StringIO()
    call_command("webhooks", *args, stdout=out)
    return out.getvalue()


def test_command_events_json_is_an_empty_array_when_there_are_none(receiver):
    assert json.loads(_cmd("events", "--json")) == []
    endpoint, _ = endpoint_create(url=receiver.url("/a"))
    endpoint_send_test_event(endpoint=endpoint)
    assert json.loads(_cmd("events", "--json", "--status", "failed")) == []
    assert [row["type"] for row in json.loads(_cmd("events", "--json"))] == ["webhook.test"]


def test_command_add_list_test_events_resend(receiver, settings):
    out = _cmd("add", receiver.url("/cli"), "--events", "file.stored,webhook.test")
    assert "whsec_" in out
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.event_types == ["file.stored", "webhook.test"]
    assert str(endpoint.id) in _cmd("endpoints")

    assert "queued" in _cmd("test", str(endpoint.id))
    receiver.script("/cli", Reply(500))
    assert json.loads(_cmd("deliver", "--until-empty"))["processed"] == 1
    listing = _cmd("events")
    assert "webhook.test" in listing and "pending" in listing and "HTTP 500" in listing
    rows = json.loads(_cmd("events", "--json"))
    delivery_id = rows[0]["deliveries"][0]["delivery"]
    assert rows[0]["deliveries"][0]["last_status_code"] == 500

    WebhookDelivery.objects.filter(pk=delivery_id).update(status="failed")
    assert "1 failed deliveries" in _cmd("resend", "--failed-since", "1h")
    WebhookDelivery.objects.filter(pk=delivery_id).update(status="failed")
    assert "queued for re-sending" in _cmd("resend", delivery_id)
    _cmd("deliver")
    assert WebhookDelivery.objects.get().status == "delivered"
    assert "whsec_" in _cmd("rotate", str(endpoint.id))


@pytest.mark.parametrize(
    "args",
    [
        ("add", "http://169.254.169.254/"),
        ("add", "http://127.0.0.1:9/", "--events", "bogus"),
        ("resend", "00000000-0000-0000-0000-000000000000"),
        ("resend", "not-a-uuid"),
        ("resend", "--failed-since", "yesterday-ish"),
        ("test", "00000000-0000-0000-0000-000000000000"),
    ],
)
def test_command_bad_input_is_a_clear_error(args):
    with pytest.raises(CommandError):
        _cmd(*args)
    assert not WebhookEndpoint.objects.exists()


@pytest.fixture
def plain_static(settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def test_admin_pages_and_resend_action(admin_client, receiver, settings, plain_static):
    d = _failed_delivery(receiver, settings)
    for url in (
        "/admin/common/outboxevent/",
        f"/admin/common/outboxevent/{d.event_id}/change/",
        "/admin/common/webhookdelivery/",
        "/admin/common/webhookendpoint/",
        f"/admin/common/webhookendpoint/{d.endpoint_id}/change/",
        "/admin/common/webhookendpoint/add/",
    ):
        assert admin_client.get(url).status_code == 200, url
    response = admin_client.post(
        "/admin/common/webhookdelivery/",
        {"action": "resend", "_selected_action": [str(d.id)]},
    )
    assert response.status_code == 302
    d.refresh_from_db()
    assert d.status == "pending"


def test_admin_refuses_unsafe_endpoint_url(admin_client, settings, plain_static):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    response = admin_client.post(
        "/admin/common/webhookendpoint/add/",
        {"url": "http://169.254.169.254/", "event_types": "[]", "description": ""},
    )
    assert response.status_code == 200
    assert b"cloud metadata address" in response.content
    assert not WebhookEndpoint.objects.exists()
