"""Webhook pages (staff): the endpoint list with health, the delivery log with
re-sending, and each delivery's attempt history."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from django.utils import timezone

from common.models import WebhookDelivery, WebhookEndpoint
from common.services.dispatch import process_pending_events
from common.services.emit import emit_event
from common.services.webhooks import endpoint_create, endpoint_send_test_event
from common.tests.receivers import Reply
from frontend.tests.webhook_helpers import _fail, _failed_delivery

pytestmark = pytest.mark.django_db


# The list and the delivery log ---------------------------------------------------


def test_list_shows_health_from_the_latest_attempt(client_staff, staff_user, endpoint):
    older = _failed_delivery(endpoint)
    newer = _failed_delivery(endpoint)
    WebhookDelivery.objects.filter(pk=older.pk).update(last_status_code=503)
    WebhookDelivery.objects.filter(pk=newer.pk).update(last_status_code=410)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now())
    quiet, _ = endpoint_create(owner=staff_user, url="http://127.0.0.1:7/quiet")
    WebhookEndpoint.objects.filter(pk=quiet.pk).update(is_active=False, disabled_reason="gone")
    page = client_staff.get("/webhooks/")
    row = re.search(rf'<tr id="endpoint-{endpoint.id}">.*?</tr>'.encode(), page.content, re.S)
    assert b"HTTP 410" in row.group(0)
    assert b"HTTP 503" not in row.group(0)
    assert b"failing" in row.group(0)
    quiet_row = re.search(rf'<tr id="endpoint-{quiet.id}">.*?</tr>'.encode(), page.content, re.S)
    assert b"badge-disabled" in quiet_row.group(0)
    assert b"gone" in quiet_row.group(0)
    assert b"none yet" in quiet_row.group(0)


def test_list_runs_few_queries(client_staff, staff_user, django_assert_max_num_queries):
    for n in range(5):
        ep, _ = endpoint_create(owner=staff_user, url=f"http://127.0.0.1:{9000 + n}/hook")
        _failed_delivery(ep)
    with django_assert_max_num_queries(10):
        page = client_staff.get("/webhooks/")
    assert page.content.count(b"HTTP 500") == 5


def _thirty_deliveries(endpoint: WebhookEndpoint, staff_user) -> None:
    other, _ = endpoint_create(owner=staff_user, url="http://127.0.0.1:8/other")
    for n in range(15):
        emit_event(
            event_type="file.stored",
            aggregate_type="file",
            aggregate_id=uuid.uuid4(),
            payload={"n": n},
        )
    for _ in range(15):
        endpoint_send_test_event(endpoint=endpoint)
    assert endpoint.deliveries.count() == 30
    assert other.deliveries.count() == 15


def test_delivery_log_is_paginated_newest_first_with_few_queries(
    client_staff, endpoint, staff_user, django_assert_max_num_queries
):
    _thirty_deliveries(endpoint, staff_user)
    failed = endpoint.deliveries.order_by("created_at").first()
    _fail(failed, code=502)
    with django_assert_max_num_queries(10):
        first = client_staff.get(f"/webhooks/{endpoint.id}/")
    assert first.status_code == 200
    rows = re.findall(rb'<tr id="delivery-([0-9a-f-]+)">', first.content)
    assert len(rows) == 25
    newest = endpoint.deliveries.order_by("-created_at", "-id").first()
    assert rows[0].decode() == str(newest.id)
    assert b"Page 1 of 2" in first.content
    with django_assert_max_num_queries(10):
        second = client_staff.get(f"/webhooks/{endpoint.id}/?page=2")
    rows = re.findall(rb'<tr id="delivery-([0-9a-f-]+)">', second.content)
    assert len(rows) == 5
    assert str(failed.id).encode() in b"".join(rows)
    # The last attempt of a failed delivery: code, duration, response excerpt.
    row = re.search(rf'<tr id="delivery-{failed.id}">.*?</tr>'.encode(), second.content, re.S)
    assert b"HTTP 502" in row.group(0)
    assert b"42 ms" in row.group(0)
    assert b"upstream exploded" in row.group(0)
    assert f'href="/events/{failed.event_id}/"'.encode() in row.group(0)


def test_delivery_log_filters_by_status(client_staff, endpoint, staff_user):
    failed = _failed_delivery(endpoint)
    pending = WebhookDelivery.objects.get(event=endpoint_send_test_event(endpoint=endpoint))
    page = client_staff.get(f"/webhooks/{endpoint.id}/?status=failed")
    assert str(failed.id).encode() in page.content
    assert str(pending.id).encode() not in page.content
    page = client_staff.get(f"/webhooks/{endpoint.id}/?status=bogus")
    assert str(pending.id).encode() in page.content


def test_resend_one_failed_delivery(client_staff, endpoint):
    delivery = _failed_delivery(endpoint)
    here = f"/webhooks/{endpoint.id}/?status=failed"
    page = client_staff.post_form(
        f"/deliveries/{delivery.id}/resend/", {"next": here}, page=f"/webhooks/{endpoint.id}/"
    )
    assert page.status_code == 302
    assert page["Location"] == here
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert delivery.attempts == 0
    assert b"queued again" in client_staff.get(here).content


def test_resend_ignores_a_foreign_next(client_staff, endpoint):
    delivery = _failed_delivery(endpoint)
    page = client_staff.post_form(
        f"/deliveries/{delivery.id}/resend/",
        {"next": "https://evil.example/"},
        page=f"/webhooks/{endpoint.id}/",
    )
    assert page["Location"] == f"/webhooks/{endpoint.id}/"


def test_resend_without_csrf_or_as_non_staff_changes_nothing(client_staff, client_user, endpoint):
    delivery = _failed_delivery(endpoint)
    assert client_staff.post(f"/deliveries/{delivery.id}/resend/").status_code == 403
    page = client_user.post_form(f"/deliveries/{delivery.id}/resend/", page="/tokens/")
    assert page.status_code == 403
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED


def test_resend_unknown_delivery_is_not_found(client_staff):
    page = client_staff.post_form(f"/deliveries/{uuid.uuid4()}/resend/", page="/webhooks/")
    assert page.status_code == 404


def test_resend_failed_since(client_staff, endpoint, staff_user):
    recent = [_failed_delivery(endpoint) for _ in range(2)]
    old = _failed_delivery(endpoint)
    long_ago = timezone.now() - dt.timedelta(days=3)
    WebhookDelivery.objects.filter(pk=old.pk).update(updated_at=long_ago)
    other, _ = endpoint_create(owner=staff_user, url="http://127.0.0.1:8/other")
    elsewhere = _failed_delivery(other)
    since = (timezone.now() - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    page = client_staff.post_form(
        f"/webhooks/{endpoint.id}/resend-failed/",
        {"since": since},
        page=f"/webhooks/{endpoint.id}/",
    )
    assert page.status_code == 302
    assert b"2 failed deliveries queued again" in client_staff.get(page["Location"]).content
    statuses = dict(WebhookDelivery.objects.values_list("id", "status"))
    assert [statuses[d.id] for d in recent] == ["pending", "pending"]
    assert statuses[old.id] == "failed"
    assert statuses[elsewhere.id] == "failed"


@pytest.mark.parametrize("since", ["", "yesterday", "2026-13-45T99:00"])
def test_resend_failed_with_a_bad_time_changes_nothing(client_staff, endpoint, since):
    delivery = _failed_delivery(endpoint)
    page = client_staff.post_form(
        f"/webhooks/{endpoint.id}/resend-failed/",
        {"since": since},
        page=f"/webhooks/{endpoint.id}/",
    )
    assert page.status_code == 200
    assert b'id="id_since_error"' in page.content
    # Re-send buttons on the re-rendered page come back to the log.
    assert f'name="next" value="/webhooks/{endpoint.id}/"'.encode() in page.content
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED


# Attempt history -----------------------------------------------------------------


def _deliver_with_retries(runs: int) -> None:
    """Real delivery runs, each attempt made due again at once."""
    for _ in range(runs):
        while process_pending_events(batch_size=50).processed:
            pass
        WebhookDelivery.objects.filter(status="pending").update(
            next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
        )


def _row(content: bytes, delivery_id) -> bytes:
    row = re.search(rf'<tr id="delivery-{delivery_id}">.*?</tr>'.encode(), content, re.S)
    assert row is not None, f"no row for delivery {delivery_id}"
    return row.group(0)


def test_delivery_log_shows_the_recent_attempts_of_each_delivery_with_few_queries(
    client_staff, staff_user, receiver, django_assert_max_num_queries
):
    endpoint, _ = endpoint_create(owner=staff_user, url=receiver.url())
    receiver.always("/hook", Reply(status=500, body=b"upstream exploded"))
    for _ in range(26):
        endpoint_send_test_event(endpoint=endpoint)
    _deliver_with_retries(6)
    assert len(receiver.requests) == 26 * 6

    with django_assert_max_num_queries(10):
        page = client_staff.get(f"/webhooks/{endpoint.id}/")
    rows = re.findall(rb'<tr id="delivery-([0-9a-f-]+)">', page.content)
    assert len(rows) == 25
    newest = endpoint.deliveries.order_by("-created_at", "-id").first()
    row = _row(page.content, newest.id)
    # The five newest of six attempts, newest first, and a link to the rest.
    numbers = re.findall(rb'<span class="attempt-number">#(\d)</span>', row)
    assert numbers == [b"6", b"5", b"4", b"3", b"2"]
    assert row.count(b"HTTP 500") == 5
    assert row.count(b"upstream exploded") == 5
    assert f'href="/deliveries/{newest.id}/"'.encode() in row
    assert b"1 more attempt<" in row


def test_delivery_log_links_the_history_of_a_short_one(client_staff, staff_user, receiver):
    endpoint, _ = endpoint_create(owner=staff_user, url=receiver.url())
    receiver.script("/hook", Reply(status=503, body=b"later"))
    event = endpoint_send_test_event(endpoint=endpoint)
    _deliver_with_retries(2)
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == "delivered"
    row = _row(client_staff.get(f"/webhooks/{endpoint.id}/").content, delivery.id)
    assert re.findall(rb'<span class="attempt-number">#(\d)</span>', row) == [b"2", b"1"]
    assert b"HTTP 200" in row and b"HTTP 503" in row and b"later" in row
    assert b"more attempt" not in row
    assert f'href="/deliveries/{delivery.id}/"'.encode() in row


def test_delivery_page_lists_every_attempt_with_headers(
    client_staff, client_user, anon, staff_user, receiver, django_assert_max_num_queries
):
    endpoint, _ = endpoint_create(owner=staff_user, url=receiver.url())
    receiver.always("/hook", Reply(status=500, body=b"<b>nope</b>", headers={"x-trace": "t-1"}))
    event = endpoint_send_test_event(endpoint=endpoint)
    _deliver_with_retries(6)
    delivery = WebhookDelivery.objects.get(event=event)
    url = f"/deliveries/{delivery.id}/"

    with django_assert_max_num_queries(10):
        page = client_staff.get(url)
    assert page.status_code == 200
    rows = re.findall(rb'<tr id="attempt-[0-9a-f-]+">.*?</tr>', page.content, re.S)
    assert len(rows) == 6
    assert [re.search(rb'<td class="num">(\d+)</td>', r).group(1) for r in rows] == [
        b"6",
        b"5",
        b"4",
        b"3",
        b"2",
        b"1",
    ]
    assert all(b"HTTP 500" in r and b"x-trace: t-1" in r for r in rows)
    assert b"&lt;b&gt;nope&lt;/b&gt;" in rows[0] and b"<b>nope</b>" not in page.content
    assert f'href="/events/{event.id}/"'.encode() in page.content
    assert f"/deliveries/{delivery.id}/resend/".encode() in page.content

    assert anon.get(url).status_code == 302
    assert client_user.get(url).status_code == 403
    assert client_staff.get(f"/deliveries/{uuid.uuid4()}/").status_code == 404


def test_attempts_after_a_resend_are_numbered_distinctly(
    client_staff, staff_user, receiver, settings
):
    """#23.4: after a re-send the two attempts were both "#1"."""
    from common.services.resend import delivery_resend

    settings.WEBHOOK_MAX_ATTEMPTS = 1
    endpoint, _ = endpoint_create(owner=staff_user, url=receiver.url())
    receiver.script("/hook", Reply(status=500), Reply(status=200))
    event = endpoint_send_test_event(endpoint=endpoint)
    _deliver_with_retries(1)
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == "failed"
    delivery_resend(delivery=delivery)
    _deliver_with_retries(1)

    row = _row(client_staff.get(f"/webhooks/{endpoint.id}/").content, delivery.id)
    assert re.findall(rb'<span class="attempt-number">#(\d)</span>', row) == [b"2", b"1"]
    assert b"try 1 after a re-send" in row
    page = client_staff.get(f"/deliveries/{delivery.id}/")
    rows = re.findall(rb'<tr id="attempt-[0-9a-f-]+">.*?</tr>', page.content, re.S)
    assert [re.search(rb'<td class="num">(\d+)', r).group(1) for r in rows] == [b"2", b"1"]


def test_delivery_page_of_a_delivery_attempted_before_the_history(client_staff, endpoint):
    delivery = _failed_delivery(endpoint)
    page = client_staff.get(f"/deliveries/{delivery.id}/")
    assert page.status_code == 200
    assert b"attempted before it existed" in page.content and b"HTTP 500" in page.content
