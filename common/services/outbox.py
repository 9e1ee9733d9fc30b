"""The transactional outbox: events are rows written with the change they describe.

Delivery is a separate concern (``common.services.delivery``); this module
writes events, fans them out to the subscribed endpoints (in the same
transaction, so a crash after commit loses nothing) and asks for a delivery
run once the transaction commits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone
from uuid_utils.compat import uuid7

from common.models import OutboxEvent, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

_INSERT_EVENT_SQL = """
INSERT INTO common_outboxevent (
    id, created_at, updated_at, aggregate_type, aggregate_id, event_type,
    idempotency_key, payload, status, attempts, max_attempts, next_attempt_at,
    delivered_at, last_error
) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, 0, %s, %s, %s, '')
ON CONFLICT (event_type, idempotency_key) DO NOTHING
RETURNING id
"""


def emit_event(
    aggregate_type: str,
    aggregate_id: Any,
    event_type: str,
    payload: dict[str, Any],
    *,
    idempotency_key: str | None = None,
) -> OutboxEvent | None:
    """Record a domain event in the caller's transaction; deliver it after commit.

    The payload is serialized here so a value that JSON cannot carry fails in
    the code that produced it, not later in a worker. A repeated
    ``(event_type, idempotency_key)`` is not an error: the insert is skipped
    with ``ON CONFLICT DO NOTHING`` (the caller's transaction stays usable) and
    ``None`` is returned. The key defaults to ``"{aggregate_type}:{aggregate_id}"``,
    i.e. one event of a type per aggregate.
    """
    endpoints = [
        ep
        for ep in WebhookEndpoint.objects.filter(is_active=True).only("id", "event_types")
        if ep.subscribes_to(event_type)
    ]
    return create_event(
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        event_type=event_type,
        payload=payload,
        idempotency_key=idempotency_key,
        endpoints=endpoints,
    )


def create_event(
    *,
    aggregate_type: str,
    aggregate_id: Any,
    event_type: str,
    payload: dict[str, Any],
    idempotency_key: str | None,
    endpoints: Iterable[WebhookEndpoint],
) -> OutboxEvent | None:
    """Insert an event and its delivery rows for exactly ``endpoints``.

    ``emit_event`` passes every subscribed active endpoint; a test event
    passes one. Returns ``None`` when the idempotency key was already used.
    """
    body = json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":"))
    data = json.loads(body)
    key = idempotency_key or f"{aggregate_type}:{aggregate_id}"
    endpoints = list(endpoints)
    max_attempts = settings.WEBHOOK_MAX_ATTEMPTS
    now = timezone.now()
    event_id = uuid7()
    status = OutboxEvent.Status.PENDING if endpoints else OutboxEvent.Status.DELIVERED
    next_attempt_at = now if endpoints else None
    delivered_at = None if endpoints else now

    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute(
                _INSERT_EVENT_SQL,
                [
                    event_id,
                    now,
                    now,
                    aggregate_type,
                    str(aggregate_id),
                    event_type,
                    key,
                    body,
                    status,
                    max_attempts,
                    next_attempt_at,
                    delivered_at,
                ],
            )
            inserted = cursor.fetchone()
        if inserted is None:
            logger.info("Outbox event %s %s already recorded; skipped", event_type, key)
            return None
        if endpoints:
            WebhookDelivery.objects.bulk_create(
                [
                    WebhookDelivery(
                        event_id=event_id,
                        endpoint_id=ep.id,
                        max_attempts=max_attempts,
                        next_attempt_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                    for ep in endpoints
                ]
            )
            request_delivery_on_commit()

    event = OutboxEvent(
        id=event_id,
        created_at=now,
        updated_at=now,
        aggregate_type=aggregate_type,
        aggregate_id=str(aggregate_id),
        event_type=event_type,
        idempotency_key=key,
        payload=data,
        status=status,
        attempts=0,
        max_attempts=max_attempts,
        next_attempt_at=next_attempt_at,
        delivered_at=delivered_at,
    )
    event._state.adding = False
    event._state.db = "default"
    logger.info(
        "Outbox event %s %s recorded for %d endpoint(s)", event_type, event_id, len(endpoints)
    )
    return event


def _send_delivery_task() -> None:
    from common.tasks import deliver_outbox_events_task

    deliver_outbox_events_task.delay()


def request_delivery_on_commit() -> None:
    """Ask for a delivery run once the current transaction commits.

    Only a shortcut: the beat sweep delivers anyway if the message is lost.
    One message per transaction, however many events it wrote.
    """
    pending = getattr(connection, "run_on_commit", [])
    if any(func is _send_delivery_task for _, func, _ in pending):
        return
    transaction.on_commit(_send_delivery_task, robust=True)
