"""The event log (staff): filters, delivery summary, the event's payload and
per-endpoint delivery state with re-sending."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import pytest
from django.utils import timezone
from django.utils.html import escape

from common.models import OutboxEvent, WebhookDelivery
from common.services.dispatch import process_pending_events
from common.services.emit import emit_event
from common.services.webhooks import endpoint_create
from common.tests.receivers import Receiver, Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoints(staff_user):
    first, _ = endpoint_create(owner=staff_user, url="http://127.0.0.1:9/first")
    second, _ = endpoint_create(owner=staff_user, url="http://127.0.0.1:8/second")
    return first, second


def _emit(event_type: str = "file.stored", **payload) -> OutboxEvent:
    event = emit_event(
        event_type=event_type,
        aggregate_type="file",
        aggregate_id=uuid.uuid4(),
        payload={"filename": "a.txt", **payload},
    )
    assert event is not None  # a new aggregate id: never an idempotent repeat
    return event


def _row_ids(content: bytes) -> list[str]:
    return [m.decode() for m in re.findall(rb'<tr id="event-([0-9a-f-]+)">', content)]


def test_pages_are_for_staff(anon, client_user, endpoints):
    event = _emit()
    for url in ("/events/", f"/events/{event.id}/"):
        assert anon.get(url).status_code == 302
        assert client_user.get(url).status_code == 403


def test_unknown_event_is_not_found(client_staff):
    assert client_staff.get(f"/events/{uuid.uuid4()}/").status_code == 404


def test_list_filters_by_type(client_staff, endpoints):
    stored = _emit("file.stored")
    deleted = _emit("file.deleted")
    page = client_staff.get("/events/?event_type=file.deleted")
    assert page.status_code == 200
    assert _row_ids(page.content) == [str(deleted.id)]
    everything = client_staff.get("/events/")
    assert _row_ids(everything.content) == [str(deleted.id), str(stored.id)]
    assert b'<option value="batch.completed">batch.completed</option>' in everything.content


def test_list_filters_by_time(client_staff, endpoints):
    old = _emit()
    middle = _emit()
    new = _emit()
    now = timezone.now()
    OutboxEvent.objects.filter(pk=old.pk).update(created_at=now - dt.timedelta(days=3))
    OutboxEvent.objects.filter(pk=middle.pk).update(created_at=now - dt.timedelta(days=1))
    fmt = "%Y-%m-%dT%H:%M"
    since = (now - dt.timedelta(days=2)).strftime(fmt)
    until = (now - dt.timedelta(hours=12)).strftime(fmt)
    page = client_staff.get(f"/events/?since={since}&until={until}")
    assert _row_ids(page.content) == [str(middle.id)]
    page = client_staff.get(f"/events/?since={since}")
    assert _row_ids(page.content) == [str(new.id), str(middle.id)]


def test_list_reports_bad_filters(client_staff, endpoints):
    event = _emit()
    page = client_staff.get("/events/?since=soon&event_type=file.eaten")
    assert page.status_code == 200
    assert b'id="id_since_error"' in page.content
    assert b'id="id_event_type_error"' in page.content
    assert _row_ids(page.content) == [str(event.id)]


def test_list_summarises_deliveries_with_few_queries(
    client_staff, endpoints, django_assert_max_num_queries
):
    first, _ = endpoints
    events = [_emit() for _ in range(30)]
    WebhookDelivery.objects.filter(event=events[-1], endpoint=first).update(status="failed")
    with django_assert_max_num_queries(10):
        page = client_staff.get("/events/")
    assert len(_row_ids(page.content)) == 25
    row = re.search(rf'<tr id="event-{events[-1].id}">.*?</tr>'.encode(), page.content, re.S)
    assert b"1 pending" in row.group(0)
    assert b"1 failed" in row.group(0)
    second_page = client_staff.get("/events/?page=2")
    assert len(_row_ids(second_page.content)) == 5


def test_detail_shows_the_pretty_payload_and_every_delivery(
    client_staff, endpoints, django_assert_max_num_queries
):
    _, second = endpoints
    event = _emit(size=12, sha256="ab" * 32, note="<b>not markup</b>")
    WebhookDelivery.objects.filter(event=event, endpoint=second).update(
        status="failed", last_status_code=500, last_attempt_at=timezone.now(), last_duration_ms=7
    )
    with django_assert_max_num_queries(10):
        page = client_staff.get(f"/events/{event.id}/")
    assert page.status_code == 200
    event.refresh_from_db()
    pretty = escape(json.dumps(event.payload, indent=2)).encode()
    assert b'<pre class="payload" tabindex="0" aria-labelledby="payload-heading">' + pretty in (
        page.content
    )
    assert b"<b>not markup</b>" not in page.content
    for endpoint in endpoints:
        assert f'href="/webhooks/{endpoint.id}/"'.encode() in page.content
    assert b"HTTP 500" in page.content
    assert b"7 ms" in page.content
    assert page.content.count(b"/resend/") == 2


def test_resend_from_the_event_page_returns_there(client_staff, endpoints):
    _, second = endpoints
    event = _emit()
    delivery = WebhookDelivery.objects.get(event=event, endpoint=second)
    delivery.status = WebhookDelivery.Status.FAILED
    delivery.save(update_fields=["status", "updated_at"])
    here = f"/events/{event.id}/"
    page = client_staff.post_form(f"/deliveries/{delivery.id}/resend/", {"next": here}, page=here)
    assert page.status_code == 302
    assert page["Location"] == here
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PENDING


def test_detail_shows_each_deliverys_attempts_newest_first(
    client_staff, staff_user, django_assert_max_num_queries
):
    receiver = Receiver()
    try:
        ok, _ = endpoint_create(owner=staff_user, url=receiver.url("/ok"))
        flaky, _ = endpoint_create(owner=staff_user, url=receiver.url("/flaky"))
        receiver.always("/flaky", Reply(status=502, body=b"bad gateway"))
        event = _emit()
        for _ in range(7):
            process_pending_events()
            WebhookDelivery.objects.filter(status="pending").update(
                next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
            )
    finally:
        receiver.close()
    flaky_delivery = WebhookDelivery.objects.get(event=event, endpoint=flaky)
    assert flaky_delivery.attempts == 7

    with django_assert_max_num_queries(10):
        page = client_staff.get(f"/events/{event.id}/")
    rows = {
        endpoint_id: re.search(rf'<tr id="delivery-{d}">.*?</tr>'.encode(), page.content, re.S)[0]
        for endpoint_id, d in WebhookDelivery.objects.filter(event=event).values_list(
            "endpoint_id", "id"
        )
    }
    numbers = re.findall(rb'<span class="attempt-number">#(\d)</span>', rows[flaky.id])
    assert numbers == [b"7", b"6", b"5", b"4", b"3"]
    assert rows[flaky.id].count(b"HTTP 502") == 5 and b"bad gateway" in rows[flaky.id]
    assert b"2 more attempts" in rows[flaky.id]
    assert re.findall(rb'<span class="attempt-number">#(\d)</span>', rows[ok.id]) == [b"1"]
    assert b"HTTP 200" in rows[ok.id]


def test_event_nobody_received_is_not_labelled_delivered(client_staff):
    """#23.3: with no subscribed endpoint the log said "Delivered"."""
    event = _emit()
    page = client_staff.get("/events/").content.decode()
    row = re.search(rf'<tr id="event-{event.id}">.*?</tr>', page, re.S).group(0)
    assert "No subscribers" in row and "badge-no_subscribers" in row
    assert "Delivered" not in row
    filtered = client_staff.get("/events/?status=no_subscribers").content
    assert _row_ids(filtered) == [str(event.id)]
    detail = client_staff.get(f"/events/{event.id}/").content.decode()
    assert "never: no endpoint received it" in detail
