"""Webhook endpoint pages (staff): list with health, create (secret once), edit,
enable/disable, rotate, test event, delete (the list and the delivery log:
test_webhook_deliveries.py)."""

from __future__ import annotations

import re
import uuid

import pytest

from common.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from common.services.webhooks import endpoint_create, endpoint_send_test_event
from frontend.tests.webhook_helpers import HOOK, SECRET_RE

pytestmark = pytest.mark.django_db

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
    assert b"You do not have access to this page. Only staff may open it.</p>" in refused.content
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
    assert b'<p id="endpoint-sends">Doorito now sends every event to <span' in page.content


@pytest.mark.parametrize(
    ("types", "said"),
    [(["file.stored"], b"file.stored events"), (["file.stored", "webhook.test"], b"events")],
)
def test_create_says_which_events_are_sent(client_staff, types, said):
    page = client_staff.post_form("/webhooks/new/", {"url": HOOK, "event_types": types})
    sentence = re.search(rb'<p id="endpoint-sends">([^<]*)<span', page.content)
    assert sentence, page.content.decode()
    assert sentence.group(1).endswith(said + b" to ")
    assert b" event " not in sentence.group(1)


@pytest.mark.parametrize(
    ("allowed", "help_text"),
    [
        (
            ["127.0.0.0/8", "::1/128"],
            b"refused, except in what this configuration allows (WEBHOOK_ALLOWED_NETWORKS): "
            b"127.0.0.0/8, ::1/128.",
        ),
        ([], b"link-local and metadata addresses are refused.<"),
    ],
)
def test_the_url_help_says_what_this_configuration_refuses(
    client_staff, settings, allowed, help_text
):
    settings.WEBHOOK_ALLOWED_NETWORKS = allowed
    assert help_text in client_staff.get("/webhooks/new/").content


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
