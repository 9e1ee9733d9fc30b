"""The portal's single door to the outbox (every portal event goes through here)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


def emit(
    *,
    aggregate_type: str,
    aggregate_id: Any,
    event_type: str,
    payload: dict[str, Any],
    idempotency_key: str | None = None,
) -> Any:
    """Write one outbox row in the caller's transaction."""
    from common.services.outbox import emit_event

    return emit_event(
        aggregate_type, str(aggregate_id), event_type, payload, idempotency_key=idempotency_key
    )


def existing_idempotency_keys(*, event_type: str, keys: list[str]) -> set[str]:
    """Which of ``keys`` already have an outbox event of ``event_type``."""
    from common.models import OutboxEvent

    return set(
        OutboxEvent.objects.filter(event_type=event_type, idempotency_key__in=keys).values_list(
            "idempotency_key", flat=True
        )
    )


@dataclass(frozen=True)
class EventSpec:
    aggregate_type: str
    aggregate_id: Any
    payload: dict[str, Any]
    idempotency_key: str


def emit_many(*, event_type: str, events: list[EventSpec]) -> int:
    """``emit_event`` for many events of one type, in a few statements.

    TTL cleanup emits up to 1000 ``file.deleted`` at once; one round trip per
    event would make the events cost far more than the deletions. Same rows
    as ``emit_event`` (event, one delivery per subscribed active endpoint,
    delivery requested on commit); keys already used are skipped. Must run
    inside the caller's transaction. Returns how many events were written.
    """
    from django.conf import settings
    from django.core.serializers.json import DjangoJSONEncoder
    from django.utils import timezone

    from common.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
    from common.services.outbox import request_delivery_on_commit

    if not events:
        return 0
    known = existing_idempotency_keys(
        event_type=event_type, keys=[e.idempotency_key for e in events]
    )
    fresh = [e for e in events if e.idempotency_key not in known]
    if not fresh:
        return 0
    endpoints = [
        ep
        for ep in WebhookEndpoint.objects.filter(is_active=True).only("id", "event_types")
        if ep.subscribes_to(event_type)
    ]
    now = timezone.now()
    max_attempts = settings.WEBHOOK_MAX_ATTEMPTS
    rows = [
        OutboxEvent(
            aggregate_type=e.aggregate_type,
            aggregate_id=str(e.aggregate_id),
            event_type=event_type,
            idempotency_key=e.idempotency_key,
            # Serialised here, as emit_event does, so a bad payload fails at its source.
            payload=json.loads(json.dumps(e.payload, cls=DjangoJSONEncoder)),
            status=OutboxEvent.Status.PENDING if endpoints else OutboxEvent.Status.DELIVERED,
            max_attempts=max_attempts,
            next_attempt_at=now if endpoints else None,
            delivered_at=None if endpoints else now,
        )
        for e in fresh
    ]
    OutboxEvent.objects.bulk_create(rows, batch_size=500)
    if endpoints:
        WebhookDelivery.objects.bulk_create(
            [
                WebhookDelivery(
                    event=row, endpoint=ep, max_attempts=max_attempts, next_attempt_at=now
                )
                for row in rows
                for ep in endpoints
            ],
            batch_size=1000,
        )
        request_delivery_on_commit()
    return len(rows)
