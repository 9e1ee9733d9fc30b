"""Webhook endpoint pages (staff): list with health, create (secret once), edit,
enable/disable, rotate, test event, delete, the delivery log with re-sending,
and each delivery's attempt history."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from django.utils import timezone

from common.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from common.services.dispatch import process_pending_events
from common.services.emit import emit_event
from common.services.webhooks import endpoint_create, endpoint_send_test_event
from common.tests.receivers import Reply

pytestmark = pytest.mark.django_db

HOOK = "http://127.0.0.1:9/hook"
SECRET_RE = re.compile(rb'<code id="secret-value">(whsec_[A-Za-z0-9+/=]+)</code>')


@pytest.fixture
def endpoint(staff_user) -> WebhookEndpoint:
    endpoint, _ = endpoint_create(owner=staff_user, url=HOOK, description="runner")
    return endpoint


def _fail(delivery: WebhookDelivery, *, code: int | None = 500) -> None:
    delivery.status = WebhookDelivery.Status.FAILED
    delivery.attempts = delivery.max_attempts
    delivery.next_attempt_at = None
    delivery.last_attempt_at = timezone.now()
    delivery.last_status_code = code
    delivery.last_duration_ms = 42
    delivery.last_response = "upstream exploded"
    delivery.save(
        update_fields=[
            "status",
            "attempts",
            "next_attempt_at",
            "last_attempt_at",
            "last_status_code",
            "last_duration_ms",
            "last_response",
            "updated_at",
        ]
    )


def _failed_delivery(endpoint: WebhookEndpoint) -> WebhookDelivery:
    event = endpoint_send_test_event(endpoint=endpoint)
    delivery = WebhookDelivery.objects.get(event_id=event.id, endpoint=endpoint)
    _fail(delivery)
    return delivery


# Access -----------------------------------------------------------------------

STAFF_GETS = [
    "/webhooks/",
    "/webhooks/new/",
    "/webhooks/{id}/",
    "/webhooks/{id}/edit/",
    "/webhooks/{id}/rotate/",
    "/webhooks/{id}/delete/",
]
STAFF_POSTS = [
    "/webhooks/new/",
    "/webhooks/{id}/edit/",
    "/webhooks/{id}/toggle/",
    "/webhooks/{id}/rotate/",
    "/webhooks/{id}/test/",
    "/webhooks/{id}/delete/",
    "/webhooks/{id}/resend-failed/",
]


def test_resend_failed_url_opened_with_get_goes_to_the_log(client_staff, endpoint):
    page = client_staff.get(f"/webhooks/{endpoint.id}/resend-failed/?page=2&status=failed")
    assert page.status_code == 302
    assert page["Location"] == f"/webhooks/{endpoint.id}/?page=2&status=failed"


@pytest.mark.parametrize("url", STAFF_GETS)
def test_pages_are_for_staff(url, anon, client_user, client_staff, endpoint):
    url = url.format(id=endpoint.id)
    assert anon.get(url).status_code == 302
    assert anon.get(url)["Location"].startswith("/login/?next=")
    refused = client_user.get(url)
    assert refused.status_code == 403
    assert b"Not allowed" in refused.content
    assert client_staff.get(url).status_code == 200


@pytest.mark.parametrize("url", STAFF_POSTS)
def test_non_staff_posts_change_nothing(url, client_user, endpoint):
    before = WebhookEndpoint.objects.values().get(pk=endpoint.pk)
    page = client_user.post_form(
        url.format(id=endpoint.id), {"url": "http://127.0.0.1:1/x"}, page="/tokens/"
    )
    assert page.status_code == 403
    assert WebhookEndpoint.objects.values().get(pk=endpoint.pk) == before
    assert WebhookEndpoint.objects.count() == 1
    assert not OutboxEvent.objects.exists()


@pytest.mark.parametrize("url", STAFF_POSTS)
def test_posts_without_csrf_token_are_refused(url, client_staff, endpoint):
    before = WebhookEndpoint.objects.values().get(pk=endpoint.pk)
    page = client_staff.post(url.format(id=endpoint.id), {"url": "http://127.0.0.1:1/x"})
    assert page.status_code == 403
    assert WebhookEndpoint.objects.values().get(pk=endpoint.pk) == before
    assert WebhookEndpoint.objects.count() == 1
    assert not OutboxEvent.objects.exists()


def test_unknown_endpoint_is_not_found(client_staff):
    assert client_staff.get(f"/webhooks/{uuid.uuid4()}/").status_code == 404


# Create -----------------------------------------------------------------------


def test_create_shows_the_secret_once_and_stores_the_event_types(client_staff, staff_user):
    page = client_staff.post_form(
        "/webhooks/new/",
        {
            "url": HOOK,
            "description": "AI runner",
            "event_types": ["file.stored", "batch.completed"],
        },
    )
    assert page.status_code == 201
    match = SECRET_RE.search(page.content)
    assert match
    secret = match.group(1).decode()
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret == secret
    assert endpoint.url == HOOK
    assert endpoint.description == "AI runner"
    assert endpoint.event_types == ["batch.completed", "file.stored"]
    assert endpoint.owner == staff_user
    for url in ("/webhooks/", f"/webhooks/{endpoint.id}/", f"/webhooks/{endpoint.id}/edit/"):
        assert secret.encode() not in client_staff.get(url).content


def test_create_with_no_event_types_subscribes_to_all(client_staff):
    page = client_staff.post_form("/webhooks/new/", {"url": HOOK})
    assert page.status_code == 201
    assert WebhookEndpoint.objects.get().event_types == []


def test_create_form_offers_the_known_event_types_as_checkboxes(client_staff):
    page = client_staff.get("/webhooks/new/")
    for event_type in ("file.stored", "file.expiring", "file.deleted", "batch.completed"):
        assert f'type="checkbox" name="event_types" value="{event_type}"'.encode() in page.content
    assert b'<label for="id_url">URL</label>' in page.content


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://10.0.0.1/hook", b"private"),
        ("http://169.254.169.254/latest/meta-data/", b"metadata"),
        ("ftp://127.0.0.1/hook", b""),
        ("not a url", b""),
    ],
)
def test_create_refuses_unsafe_or_invalid_urls_on_the_url_field(client_staff, url, message):
    page = client_staff.post_form("/webhooks/new/", {"url": url})
    assert page.status_code == 200
    error = re.search(
        rb'<small class="field-error" id="id_url_error">([^<]+)</small>', page.content
    )
    assert error, page.content.decode()
    assert message in error.group(1)
    assert not WebhookEndpoint.objects.exists()


def test_create_refuses_an_unknown_event_type(client_staff):
    page = client_staff.post_form("/webhooks/new/", {"url": HOOK, "event_types": ["file.eaten"]})
    assert page.status_code == 200
    assert b'id="id_event_types_error"' in page.content
    assert not WebhookEndpoint.objects.exists()


# Edit, toggle, rotate, test, delete -------------------------------------------------


def test_edit_changes_the_endpoint(client_staff, endpoint):
    page = client_staff.post_form(
        f"/webhooks/{endpoint.id}/edit/",
        {
            "url": "http://127.0.0.1:8/other",
            "description": "renamed",
            "event_types": ["file.deleted"],
            "is_active": "on",
        },
    )
    assert page.status_code == 302
    assert page["Location"] == f"/webhooks/{endpoint.id}/"
    endpoint.refresh_from_db()
    assert endpoint.url == "http://127.0.0.1:8/other"
    assert endpoint.description == "renamed"
    assert endpoint.event_types == ["file.deleted"]
    assert endpoint.is_active


def test_edit_form_starts_from_the_current_settings(client_staff, staff_user):
    endpoint, _ = endpoint_create(owner=staff_user, url=HOOK, event_types=["file.expiring"])
    page = client_staff.get(f"/webhooks/{endpoint.id}/edit/")
    assert f'value="{HOOK}"'.encode() in page.content
    assert re.search(rb'value="file.expiring"[^>]*checked', page.content)
    assert re.search(rb'name="is_active"[^>]*checked', page.content)


def test_edit_with_an_unsafe_url_changes_nothing(client_staff, endpoint):
    page = client_staff.post_form(
        f"/webhooks/{endpoint.id}/edit/",
        {"url": "http://169.254.169.254/", "description": "x", "is_active": "on"},
    )
    assert page.status_code == 200
    assert b'id="id_url_error"' in page.content
    endpoint.refresh_from_db()
    assert endpoint.url == HOOK
    assert endpoint.description == "runner"


def test_edit_can_disable(client_staff, endpoint):
    page = client_staff.post_form(f"/webhooks/{endpoint.id}/edit/", {"url": HOOK})
    assert page.status_code == 302
    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert endpoint.disabled_reason


def test_toggle_disables_and_enables(client_staff, endpoint):
    delivery = WebhookDelivery.objects.get(event=endpoint_send_test_event(endpoint=endpoint))
    off = client_staff.post_form(
        f"/webhooks/{endpoint.id}/toggle/", page=f"/webhooks/{endpoint.id}/"
    )
    assert off.status_code == 302
    endpoint.refresh_from_db()
    assert not endpoint.is_active
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    detail = client_staff.get(f"/webhooks/{endpoint.id}/")
    assert b"badge-disabled" in detail.content
    assert b"disabled by an operator" in detail.content
    on = client_staff.post_form(
        f"/webhooks/{endpoint.id}/toggle/", page=f"/webhooks/{endpoint.id}/"
    )
    assert on.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.is_active
    assert endpoint.disabled_reason == ""


def test_toggle_refuses_get(client_staff, endpoint):
    assert client_staff.get(f"/webhooks/{endpoint.id}/toggle/").status_code == 405
    endpoint.refresh_from_db()
    assert endpoint.is_active


def test_rotate_asks_then_shows_the_new_secret_once(client_staff, endpoint, settings):
    settings.WEBHOOK_SECRET_ROTATION_OVERLAP_HOURS = 24
    old = endpoint.secret
    confirm = client_staff.get(f"/webhooks/{endpoint.id}/rotate/")
    assert confirm.status_code == 200
    endpoint.refresh_from_db()
    assert endpoint.secret == old  # asking changes nothing
    page = client_staff.post_form(f"/webhooks/{endpoint.id}/rotate/")
    assert page.status_code == 200
    new = SECRET_RE.search(page.content).group(1).decode()
    endpoint.refresh_from_db()
    assert new == endpoint.secret != old
    assert [e["secret"] for e in endpoint.previous_secrets] == [old]
    assert b"keeps signing alongside the new one for 24 hours, until" in page.content
    detail = client_staff.get(f"/webhooks/{endpoint.id}/")
    assert new.encode() not in detail.content
    assert old.encode() not in detail.content
    assert b"the previous secret also signs until" in detail.content


def test_send_test_event_queues_an_event_for_this_endpoint(client_staff, endpoint, staff_user):
    other, _ = endpoint_create(owner=staff_user, url="http://127.0.0.1:8/other")
    page = client_staff.post_form(
        f"/webhooks/{endpoint.id}/test/", page=f"/webhooks/{endpoint.id}/"
    )
    assert page.status_code == 302
    event = OutboxEvent.objects.get()
    assert event.event_type == "webhook.test"
    assert list(event.deliveries.values_list("endpoint_id", flat=True)) == [endpoint.id]
    detail = client_staff.get(page["Location"])
    assert f'href="/events/{event.id}/"'.encode() in detail.content
    assert b"webhook.test" in detail.content
    assert not other.deliveries.exists()


def test_send_test_event_to_a_disabled_endpoint_says_why(client_staff, endpoint):
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False)
    page = client_staff.post_form(
        f"/webhooks/{endpoint.id}/test/", page=f"/webhooks/{endpoint.id}/edit/"
    )
    assert page.status_code == 302
    assert b"enable it first" in client_staff.get(page["Location"]).content
    assert not OutboxEvent.objects.exists()


def test_delete_asks_then_deletes(client_staff, endpoint):
    endpoint_send_test_event(endpoint=endpoint)
    confirm = client_staff.get(f"/webhooks/{endpoint.id}/delete/")
    assert confirm.status_code == 200
    assert WebhookEndpoint.objects.exists()
    page = client_staff.post_form(f"/webhooks/{endpoint.id}/delete/")
    assert page.status_code == 302
    assert page["Location"] == "/webhooks/"
    assert not WebhookEndpoint.objects.exists()
    assert not WebhookDelivery.objects.exists()


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


def test_delivery_page_of_a_delivery_attempted_before_the_history(client_staff, endpoint):
    delivery = _failed_delivery(endpoint)
    page = client_staff.get(f"/deliveries/{delivery.id}/")
    assert page.status_code == 200
    assert b"attempted before it existed" in page.content and b"HTTP 500" in page.content
