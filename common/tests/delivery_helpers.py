"""Helpers shared by test_delivery.py and test_delivery_runs.py."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook

from common.models import WebhookDelivery


def make_due(**filters) -> None:
    WebhookDelivery.objects.filter(status="pending", **filters).update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )


def verify_both(secret: str, req) -> dict:
    headers = {k: req.headers[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    got = StandardWebhook(secret).verify(req.body, headers)
    SvixWebhook(secret).verify(req.body, headers)  # raises WebhookVerificationError if invalid
    return got
