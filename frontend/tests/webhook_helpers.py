"""Helpers shared by test_webhooks.py and test_webhook_deliveries.py."""

from __future__ import annotations

import re

from django.utils import timezone

from common.models import WebhookDelivery, WebhookEndpoint
from common.services.webhooks import endpoint_send_test_event

HOOK = "http://127.0.0.1:9/hook"
SECRET_RE = re.compile(rb'<code id="secret-value">(whsec_[A-Za-z0-9+/=]+)</code>')


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
