"""The delivery cells show the receivers' answers and errors to staff only (issue #21).

The pages that include ``delivery_attempts.html`` today are staff pages; the
include checks by itself so that a page for uploaders that includes it later
cannot show an endpoint operator's answers to them.
"""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.utils import timezone

from common.models import WebhookDelivery
from common.selectors import delivery_list
from common.services.dispatch import run_deliveries
from common.services.webhooks import endpoint_create
from common.tests.receivers import Reply
from frontend.tests.helpers import make_file

pytestmark = pytest.mark.django_db

RECEIVER_SAYS = "receiver internals: stack trace at db-7.internal"
ERROR = "ConnectError: db-7.internal refused the connection"
TEMPLATE = "frontend/includes/delivery_attempts.html"


def _render(delivery: WebhookDelivery, user) -> str:
    request = RequestFactory().get("/")
    request.user = user
    return render_to_string(TEMPLATE, {"delivery": delivery, "user": user}, request)


@pytest.fixture
def attempted(user, receiver) -> WebhookDelivery:
    """A delivery with its attempt history: the receiver answered 500 with a body."""
    endpoint_create(url=receiver.url())
    receiver.script("/hook", Reply(status=500, body=RECEIVER_SAYS.encode()))
    make_file(user, "watched.txt")
    run_deliveries(batch_size=20)
    return delivery_list(with_attempts=True).get()


@pytest.fixture
def row_only(user) -> WebhookDelivery:
    """A delivery attempted before the history existed: only its row tells."""
    endpoint_create(url="http://127.0.0.1:9/hook")
    make_file(user, "watched.txt")
    WebhookDelivery.objects.update(
        status=WebhookDelivery.Status.FAILED,
        attempts=1,
        last_attempt_at=timezone.now(),
        last_error=ERROR,
        last_response=RECEIVER_SAYS,
    )
    return WebhookDelivery.objects.get()


@pytest.fixture
def never_sent(user) -> WebhookDelivery:
    """Failed without an attempt (its endpoint was turned off): the error is the reason."""
    endpoint_create(url="http://127.0.0.1:9/hook")
    make_file(user, "watched.txt")
    WebhookDelivery.objects.update(status=WebhookDelivery.Status.FAILED, last_error=ERROR)
    return WebhookDelivery.objects.get()


def test_the_receivers_answer_in_the_history_is_for_staff(attempted, user, staff_user):
    assert RECEIVER_SAYS not in _render(attempted, user)
    assert "HTTP 500" in _render(attempted, user)
    assert RECEIVER_SAYS in _render(attempted, staff_user)


def test_the_last_response_on_the_row_is_for_staff(row_only, user, staff_user):
    assert RECEIVER_SAYS not in _render(row_only, user)
    assert RECEIVER_SAYS in _render(row_only, staff_user)


def test_the_last_error_on_the_row_is_for_staff(row_only, user, staff_user):
    assert ERROR not in _render(row_only, user)
    assert ERROR in _render(row_only, staff_user)


def test_the_error_of_a_delivery_never_sent_is_for_staff(never_sent, user, staff_user):
    assert ERROR not in _render(never_sent, user)
    assert "not sent" in _render(never_sent, user)
    assert ERROR in _render(never_sent, staff_user)
