"""Who sees which delivery fields (issue #21, item 4).

An uploader sees the events about their own files and how their deliveries
went (status, attempts, HTTP code), never where they went or what came
back: an endpoint URL may carry credentials (``?api_key=…``) and the
receiver's answer is its operator's business. Staff see everything.
"""

from __future__ import annotations

import io

import pytest

from common.models import OutboxEvent, WebhookDelivery
from common.services.dispatch import run_deliveries
from common.services.webhooks import endpoint_create
from common.tests.receivers import Reply
from portal.services.uploads import upload_file_create

pytestmark = pytest.mark.django_db

API_KEY = "s3cret-api-key"
RECEIVER_SAYS = "receiver internals: stack trace at db-7.internal"

# Every operation that shows deliveries to non-staff, and where the
# deliveries are in its answer.
DELIVERY_FIELDS = ("endpoint_url", "last_error", "last_response")


@pytest.fixture
def failed_delivery(user, receiver) -> WebhookDelivery:
    """A file.stored delivery the receiver refused with 500 and a telling body."""
    path = f"/hook?api_key={API_KEY}"
    endpoint_create(url=receiver.url(path))
    receiver.script(path, Reply(status=500, body=RECEIVER_SAYS.encode()))
    upload_file_create(owner=user, stream=io.BytesIO(b"data"), filename="a.txt")
    run_deliveries(batch_size=20)
    delivery = WebhookDelivery.objects.select_related("event").get()
    assert delivery.last_status_code == 500 and delivery.last_response == RECEIVER_SAYS
    assert delivery.last_error == "HTTP 500" and delivery.event.last_error == "HTTP 500"
    return delivery


def _deliveries(client, delivery: WebhookDelivery, operation: str) -> list[dict]:
    """The deliveries as one operation shows them."""
    event_id = delivery.event_id
    response = client.get(
        {
            "events": "/api/events",
            "event": f"/api/events/{event_id}",
            "event deliveries": f"/api/events/{event_id}/deliveries",
            "deliveries": "/api/deliveries",
        }[operation]
    )
    assert response.status_code == 200, response.content
    body = response.json()
    if operation == "events":
        return body["items"][0]["deliveries"]
    if operation == "event":
        return body["deliveries"]
    return body["items"]


def _event(client, delivery: WebhookDelivery, operation: str) -> dict:
    if operation == "events":
        return client.get("/api/events").json()["items"][0]
    return client.get(f"/api/events/{delivery.event_id}").json()


OPERATIONS = ("events", "event", "event deliveries", "deliveries")


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("field", DELIVERY_FIELDS)
def test_an_uploader_never_sees_a_staff_only_delivery_field(api, failed_delivery, operation, field):
    (seen,) = _deliveries(api, failed_delivery, operation)
    assert field not in seen
    # What they do see: how it went.
    assert (seen["status"], seen["attempts"], seen["last_status_code"]) == ("pending", 1, 500)


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("field", DELIVERY_FIELDS)
def test_staff_see_every_delivery_field(staff_api, failed_delivery, operation, field):
    (seen,) = _deliveries(staff_api, failed_delivery, operation)
    expected = {
        "endpoint_url": failed_delivery.endpoint.url,
        "last_error": "HTTP 500",
        "last_response": RECEIVER_SAYS,
    }[field]
    assert seen[field] == expected


@pytest.mark.parametrize("operation", ["events", "event"])
def test_an_uploader_never_sees_the_events_last_error(api, failed_delivery, operation):
    assert "last_error" not in _event(api, failed_delivery, operation)


@pytest.mark.parametrize("operation", ["events", "event"])
def test_staff_see_the_events_last_error(staff_api, failed_delivery, operation):
    assert _event(staff_api, failed_delivery, operation)["last_error"] == "HTTP 500"


@pytest.mark.parametrize(
    "path",
    [
        "/api/events",
        "/api/events/{event_id}",
        "/api/events/{event_id}/deliveries",
        "/api/deliveries",
    ],
)
def test_no_secret_anywhere_in_an_uploaders_answer(api, failed_delivery, path):
    content = api.get(path.format(event_id=failed_delivery.event_id)).content.decode()
    assert API_KEY not in content
    assert RECEIVER_SAYS not in content
    assert "/hook" not in content


def test_the_openapi_schema_names_both_shapes(api):
    schema = api.get("/api/openapi.json").json()
    components = schema["components"]["schemas"]
    assert set(DELIVERY_FIELDS).isdisjoint(components["DeliveryOut"]["properties"])
    assert set(DELIVERY_FIELDS) <= set(components["StaffDeliveryOut"]["required"])
    assert "last_error" not in components["EventOut"]["properties"]
    listed = schema["paths"]["/api/deliveries"]["get"]["responses"]["200"]
    refs = {
        option["$ref"].rsplit("/", 1)[1]
        for option in listed["content"]["application/json"]["schema"]["anyOf"]
    }
    assert refs == {"DeliveryPage", "StaffDeliveryPage"}


def test_resend_answers_staff_the_whole_delivery(staff_api, failed_delivery):
    response = staff_api.post(f"/api/deliveries/{failed_delivery.id}/resend")
    assert response.status_code == 200
    assert response.json()["endpoint_url"] == failed_delivery.endpoint.url
    assert OutboxEvent.objects.get().status == "pending"
