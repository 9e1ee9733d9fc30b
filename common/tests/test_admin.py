"""The endpoint admin validates and saves through the endpoint services, and
shows a signing secret only once (at creation and at rotation)."""

from __future__ import annotations

import pytest

from accounts.models import User
from common.models import WebhookDelivery, WebhookEndpoint
from common.services.webhooks import endpoint_create

pytestmark = pytest.mark.django_db

ADD = "/admin/common/webhookendpoint/add/"


@pytest.fixture
def staff(client) -> User:
    user = User.objects.create_superuser("admin@example.com", "pw-123456")
    client.force_login(user)
    return user


def form_data(**extra) -> dict:
    return {"url": "http://127.0.0.1:9/hook", "description": "d", "is_active": "on", **extra}


def test_add_refuses_an_unknown_event_type_and_an_unsafe_url(client, staff, settings):
    # As the old JSON field took it: the form must not store it either way.
    for event_types in ('["bogus.type"]', ["file.stored", "bogus.type"]):
        response = client.post(ADD, form_data(event_types=event_types))
        assert response.status_code == 200
        assert "bogus.type" in response.text
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    response = client.post(ADD, form_data(url="http://127.0.0.1:9/hook"))
    assert response.status_code == 200
    assert "loopback" in response.text
    assert not WebhookEndpoint.objects.exists()


def test_add_shows_the_secret_once_and_never_on_the_change_page(client, staff):
    response = client.post(ADD, form_data(event_types=["file.stored"]), follow=True)
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.event_types == ["file.stored"]
    assert endpoint.secret.startswith("whsec_")
    assert endpoint.owner is None
    assert endpoint.secret in response.text  # the message, once

    change = client.get(f"/admin/common/webhookendpoint/{endpoint.pk}/change/")
    assert change.status_code == 200
    assert endpoint.secret not in change.text
    listing = client.get("/admin/common/webhookendpoint/")
    assert endpoint.secret not in listing.text


def test_change_goes_through_the_service(client, staff):
    endpoint, secret = endpoint_create(url="http://127.0.0.1:9/hook")
    url = f"/admin/common/webhookendpoint/{endpoint.pk}/change/"
    refused = client.post(url, form_data(event_types=["bogus.type"]))
    assert refused.status_code == 200
    endpoint.refresh_from_db()
    assert endpoint.event_types == []

    saved = client.post(url, {"url": "http://127.0.0.1:9/other", "event_types": ["file.deleted"]})
    assert saved.status_code == 302, saved.text
    endpoint.refresh_from_db()
    assert endpoint.url == "http://127.0.0.1:9/other"
    assert endpoint.event_types == ["file.deleted"]
    # is_active unticked: disabled by the service, with its reason
    assert endpoint.is_active is False
    assert endpoint.disabled_reason == "disabled by an operator"
    assert endpoint.secret == secret


def test_rotate_action_shows_the_new_secret_once(client, staff):
    endpoint, old = endpoint_create(url="http://127.0.0.1:9/hook")
    response = client.post(
        "/admin/common/webhookendpoint/",
        {"action": "rotate_secret", "_selected_action": [str(endpoint.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    endpoint.refresh_from_db()
    assert endpoint.secret != old
    assert response.text.count(endpoint.secret) == 1  # the message
    change = client.get(f"/admin/common/webhookendpoint/{endpoint.pk}/change/")
    assert endpoint.secret not in change.text and old not in change.text


def test_plural_names(client, staff):
    index = client.get("/admin/").text
    assert "Webhook deliveries" in index
    assert "Upload batches" in index
    assert "deliverys" not in index and "batchs" not in index
    assert WebhookDelivery._meta.verbose_name_plural == "webhook deliveries"
