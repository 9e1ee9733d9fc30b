from __future__ import annotations

import io

import pytest
from django.utils import timezone
from standardwebhooks import Webhook

from api.tests.conftest import assert_error
from common.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from common.services.dispatch import run_deliveries
from common.tests.receivers import Reply
from portal.services.uploads import upload_file_create

pytestmark = pytest.mark.django_db


def create_endpoint(staff_api, url: str, **extra):
    response = staff_api.post(
        "/api/endpoints", {"url": url, **extra}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_endpoint_crud_rotate_and_test_event(staff_api, receiver):
    created = create_endpoint(
        staff_api, receiver.url(), event_types=["file.stored"], description="runner"
    )
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert created["event_types"] == ["file.stored"] and created["is_active"]

    detail = staff_api.get(f"/api/endpoints/{created['id']}").json()
    assert "secret" not in detail
    listing = staff_api.get("/api/endpoints").json()
    assert listing["count"] == 1 and "secret" not in listing["items"][0]

    patched = staff_api.patch(
        f"/api/endpoints/{created['id']}",
        {"description": "runner 2", "event_types": []},
        content_type="application/json",
    ).json()
    assert patched["description"] == "runner 2" and patched["event_types"] == []
    assert patched["url"] == receiver.url()

    rotated = staff_api.post(f"/api/endpoints/{created['id']}/rotate-secret").json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != secret

    response = staff_api.post(f"/api/endpoints/{created['id']}/test")
    assert response.status_code == 202
    event_id = response.json()["id"]
    assert response.json()["event_type"] == "webhook.test"
    run_deliveries(batch_size=20)
    assert len(receiver.requests) == 1
    sent = receiver.requests[0]
    # The receiver verifies with the new secret, as a stock library would.
    Webhook(rotated["secret"]).verify(sent.body, sent.headers)
    event = staff_api.get(f"/api/events/{event_id}").json()
    assert event["status"] == "delivered"
    assert event["deliveries"][0]["status"] == "delivered"
    assert event["deliveries"][0]["last_status_code"] == 200

    assert staff_api.delete(f"/api/endpoints/{created['id']}").status_code == 204
    assert not WebhookEndpoint.objects.exists()
    assert_error(staff_api.get(f"/api/endpoints/{created['id']}"), 404)


def test_endpoints_are_staff_only(api, staff_api, receiver):
    created = create_endpoint(staff_api, receiver.url())
    assert_error(api.get("/api/endpoints"), 403, "permission_denied")
    assert_error(
        api.post("/api/endpoints", {"url": receiver.url()}, content_type="application/json"),
        403,
    )
    for path in ("", "/rotate-secret", "/test"):
        method = api.get if not path else api.post
        assert_error(method(f"/api/endpoints/{created['id']}{path}"), 403)
    assert_error(api.delete(f"/api/endpoints/{created['id']}"), 403)
    assert WebhookEndpoint.objects.count() == 1
    assert not OutboxEvent.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"url": "ftp://127.0.0.1/x"},
        {"url": "http://169.254.169.254/latest"},
        {"url": "http://10.0.0.1/hook"},
        {"url": "not a url"},
        {"url": "http://127.0.0.1/x", "event_types": ["nope"]},
        {"url": "http://127.0.0.1/x", "event_types": "file.stored"},
        {"url": "http://127.0.0.1/x", "unknown": 1},
    ],
)
def test_create_endpoint_bad_input(staff_api, body):
    response = staff_api.post("/api/endpoints", body, content_type="application/json")
    assert_error(response, 400)
    assert not WebhookEndpoint.objects.exists()


def test_failed_delivery_listed_and_resent(staff_api, api, user, receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 1  # the first failure is final
    endpoint = create_endpoint(staff_api, receiver.url())
    receiver.script("/hook", Reply(status=500))
    file = upload_file_create(owner=user, stream=io.BytesIO(b"data"), filename="a.txt")
    run_deliveries(batch_size=20)

    failed = staff_api.get("/api/deliveries?status=failed").json()
    assert failed["count"] == 1
    delivery = failed["items"][0]
    assert delivery["endpoint_id"] == endpoint["id"]
    assert delivery["last_status_code"] == 500

    # The owner sees the event about their file and its delivery, read-only.
    mine = api.get("/api/events?event_type=file.stored").json()
    assert mine["count"] == 1 and mine["items"][0]["aggregate_id"] == str(file.id)
    assert mine["items"][0]["deliveries"][0]["status"] == "failed"
    assert api.get(f"/api/events/{delivery['event_id']}/deliveries").json()["count"] == 1
    assert_error(api.post(f"/api/deliveries/{delivery['id']}/resend"), 403)

    response = staff_api.post(f"/api/deliveries/{delivery['id']}/resend")
    assert response.status_code == 200
    assert response.json()["status"] == "pending" and response.json()["attempts"] == 0
    run_deliveries(batch_size=20)
    assert WebhookDelivery.objects.get(pk=delivery["id"]).status == "delivered"
    assert len(receiver.requests) == 2
    assert receiver.requests[0].headers["webhook-id"] == receiver.requests[1].headers["webhook-id"]


def test_events_of_others_are_hidden(api, other_api, user, staff_api):
    upload_file_create(owner=user, stream=io.BytesIO(b"data"), filename="a.txt")
    event = OutboxEvent.objects.get(event_type="file.stored")
    assert other_api.get("/api/events").json()["count"] == 0
    assert_error(other_api.get(f"/api/events/{event.id}"), 404)
    assert_error(other_api.get(f"/api/events/{event.id}/deliveries"), 404)
    assert api.get(f"/api/events/{event.id}").status_code == 200
    assert staff_api.get(f"/api/events/{event.id}").status_code == 200


def test_resend_unknown_or_sending(staff_api):
    assert_error(staff_api.post("/api/deliveries/01a21181-a877-753b-a9c4-c88808015751/resend"), 404)
    assert_error(staff_api.post("/api/deliveries/nope/resend"), 400)


def test_event_list_query_count(staff_api, user, receiver, django_assert_max_num_queries):
    create_endpoint(staff_api, receiver.url())
    for i in range(5):
        upload_file_create(owner=user, stream=io.BytesIO(b"%d" % i), filename=f"{i}.txt")
    # auth, count, events, deliveries+endpoints (prefetch)
    with django_assert_max_num_queries(6):
        page = staff_api.get("/api/events").json()
    assert page["count"] == 5 and all(len(e["deliveries"]) == 1 for e in page["items"])


def test_delivery_attempts_newest_first_paginated_and_staff_only(staff_api, api, user, receiver):
    endpoint = create_endpoint(staff_api, receiver.url())
    receiver.script("/hook", Reply(status=500, body=b"busy", headers={"retry-after": "1"}))
    upload_file_create(owner=user, stream=io.BytesIO(b"data"), filename="a.txt")
    run_deliveries(batch_size=20)
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    run_deliveries(batch_size=20)
    delivery = WebhookDelivery.objects.get(endpoint_id=endpoint["id"])
    assert delivery.status == "delivered"

    page = staff_api.get(f"/api/deliveries/{delivery.id}/attempts").json()
    assert (page["count"], page["limit"], page["offset"]) == (2, 50, 0)
    newest, oldest = page["items"]
    assert (newest["attempt_number"], newest["status_code"], newest["succeeded"]) == (2, 200, True)
    assert newest["response_excerpt"] == "ok" and newest["error"] == ""
    assert (oldest["attempt_number"], oldest["status_code"], oldest["succeeded"]) == (1, 500, False)
    assert oldest["response_excerpt"] == "busy" and oldest["error"] == "HTTP 500"
    assert oldest["response_headers"]["retry-after"] == "1"
    assert oldest["delivery_id"] == str(delivery.id) and oldest["error_class"] == ""
    assert isinstance(oldest["duration_ms"], int)
    second = staff_api.get(f"/api/deliveries/{delivery.id}/attempts?limit=1&offset=1").json()
    assert [a["id"] for a in second["items"]] == [oldest["id"]]
    # #23.4: the place in the history, the same on every page.
    assert (newest["number"], oldest["number"]) == (2, 1)
    assert second["items"][0]["number"] == 1

    # The uploader sees the delivery, not the receiver's answers.
    assert_error(api.get(f"/api/deliveries/{delivery.id}/attempts"), 403, "permission_denied")
    unknown = "01a21181-a877-753b-a9c4-c88808015751"
    assert_error(staff_api.get(f"/api/deliveries/{unknown}/attempts"), 404, "not_found")
    assert_error(staff_api.get("/api/deliveries/nope/attempts"), 400)
    assert_error(staff_api.get(f"/api/deliveries/{delivery.id}/attempts?limit=0"), 400)
