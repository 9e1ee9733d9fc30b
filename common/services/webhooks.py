"""Webhook endpoints: create, change, rotate the secret, test, delete.

The signing secret is a shared HMAC key, so it is stored as given (it must be
readable to sign); callers show the plain value once, on create and rotate.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, Literal, get_args

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.exceptions import ValidationError
from common.models import OutboxEvent, WebhookEndpoint
from common.services.emit import emit_event
from common.services.signing import generate_secret
from common.services.ssrf import validate_webhook_url
from common.services.text import clean_text

# The one list of event types: the API's schema takes the Literal, the
# checks below the tuple (docs/webhooks.md describes each).
EventType = Literal[
    "file.stored",
    "file.expiring",
    "file.deleted",
    "file.quarantined",
    "file.rejected",
    "file.downloaded",
    "batch.completed",
    "upload_request.submitted",
    "webhook.test",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
TEST_EVENT_TYPE = "webhook.test"


def _clean_event_types(event_types: Any) -> list[str]:
    if event_types is None:
        return []
    if isinstance(event_types, str) or not all(isinstance(t, str) for t in event_types):
        raise ValidationError(
            "event_types must be a list of event type names.", details={"field": "event_types"}
        )
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise ValidationError(
            f"Unknown event type(s): {', '.join(unknown)}.",
            details={"field": "event_types", "allowed": list(EVENT_TYPES)},
        )
    return sorted(set(event_types))


def _clean_url(url: str) -> str:
    url = clean_text((url or "").strip(), field="url")
    if not url:
        raise ValidationError("A URL is required.", details={"field": "url"})
    if len(url) > 2000:
        raise ValidationError("The URL is too long.", details={"field": "url"})
    validate_webhook_url(url)
    return url


def endpoint_validate(*, url: str, event_types: Sequence[str] | None) -> tuple[str, list[str]]:
    """The URL and event types as ``endpoint_create``/``endpoint_update`` would
    store them, or the ``ValidationError`` they would raise.

    For forms (the admin's) that must show a refusal next to the field before
    anything is saved; the services check again when they write.
    """
    return _clean_url(url), _clean_event_types(event_types)


def endpoint_create(
    *,
    owner: Any = None,
    url: str,
    event_types: Sequence[str] | None = None,
    description: str = "",
) -> tuple[WebhookEndpoint, str]:
    """Create an endpoint after the SSRF check; returns it and its plain secret."""
    url = _clean_url(url)
    types = _clean_event_types(event_types)
    secret = generate_secret()
    endpoint = WebhookEndpoint.objects.create(
        owner=owner,
        url=url,
        event_types=types,
        description=clean_text(description[:255], field="description"),
        secret=secret,
    )
    return endpoint, secret


def endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
    is_active: bool | None = None,
) -> WebhookEndpoint:
    """Change the given fields. Re-enabling clears the disabled reason and failure clock."""
    fields = ["updated_at"]
    if url is not None:
        endpoint.url = _clean_url(url)
        fields.append("url")
    if event_types is not None:
        endpoint.event_types = _clean_event_types(event_types)
        fields.append("event_types")
    if description is not None:
        endpoint.description = clean_text(description[:255], field="description")
        fields.append("description")
    if is_active is not None and is_active != endpoint.is_active:
        if not is_active:
            from common.services.event_state import disable_endpoint

            endpoint.save(update_fields=fields)
            disable_endpoint(endpoint_id=endpoint.id, reason="disabled by an operator")
            endpoint.refresh_from_db()
            return endpoint
        endpoint.is_active = True
        endpoint.disabled_reason = ""
        endpoint.failing_since = None
        fields += ["is_active", "disabled_reason", "failing_since"]
    endpoint.save(update_fields=fields)
    return endpoint


def endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> str:
    """Issue a new secret; the old one keeps signing alongside it for the overlap.

    Receivers then have ``WEBHOOK_SECRET_ROTATION_OVERLAP_HOURS`` to switch
    without a single request failing verification. Returns the new secret.
    """
    now = timezone.now()
    overlap = dt.timedelta(hours=settings.WEBHOOK_SECRET_ROTATION_OVERLAP_HOURS)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        kept = [
            e
            for e in endpoint.previous_secrets or []
            if dt.datetime.fromisoformat(e["expires_at"]) > now
        ]
        if overlap.total_seconds() > 0:
            kept.append({"secret": endpoint.secret, "expires_at": (now + overlap).isoformat()})
        new_secret = generate_secret()
        endpoint.previous_secrets = kept
        endpoint.secret = new_secret
        endpoint.save(update_fields=["secret", "previous_secrets", "updated_at"])
    return new_secret


def endpoint_send_test_event(*, endpoint: WebhookEndpoint) -> OutboxEvent:
    """Queue a ``webhook.test`` event for this endpoint only (through the real path)."""
    if not endpoint.is_active:
        raise ValidationError("The endpoint is disabled; enable it first.")
    with transaction.atomic():
        event = emit_event(
            aggregate_type="webhook_endpoint",
            aggregate_id=endpoint.id,
            event_type=TEST_EVENT_TYPE,
            payload={
                "message": "This is a test event from Doorito.",
                "endpoint_id": str(endpoint.id),
            },
            idempotency_key=f"test:{uuid.uuid4()}",
            endpoint_ids=[endpoint.id],
        )
    assert event is not None  # a fresh key never conflicts
    return event


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint and its delivery records; events it shared finish without it."""
    from common.services.event_state import lock_events, summarize_events

    with transaction.atomic():
        event_ids = sorted(
            set(endpoint.deliveries.order_by().values_list("event_id", flat=True)), key=str
        )
        lock_events(event_ids)
        endpoint.delete()
        summarize_events(event_ids, timezone.now())
