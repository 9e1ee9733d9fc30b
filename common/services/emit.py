"""Writing events: the only way into the outbox.

An event is a row written in the caller's transaction together with one
delivery row per subscribed active endpoint (a crash after commit loses
nothing, a rollback sends nothing), and a delivery run is asked for once the
transaction commits (``common.services.scheduling``). Every call, one event
or a thousand, is one SQL statement: uploads emit inside their request and
TTL cleanup emits a thousand ``file.deleted`` at once, and a round trip per
event or per table would cost more than the rest of their work.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from uuid_utils.compat import uuid7

from common.models import OutboxEvent
from common.services.scheduling import request_delivery_on_commit
from common.services.sql import fetch_all

logger = logging.getLogger(__name__)

# The events and their delivery rows in one statement (the endpoints are read
# in the same snapshot as the rows are written). With ``only`` NULL the active
# endpoints subscribed to the type receive them; else exactly the listed ones,
# if active (a test event). A used ``(event_type, idempotency_key)`` is
# skipped by ON CONFLICT DO NOTHING, so the caller's transaction stays usable.
_EMIT_SQL = """
WITH endpoints AS (
    SELECT id FROM common_webhookendpoint
    WHERE is_active AND CASE
        WHEN %(only)s::uuid[] IS NULL
            THEN event_types = '[]'::jsonb OR event_types ? %(event_type)s
        ELSE id = ANY(%(only)s::uuid[])
    END
), subscribed AS (
    SELECT EXISTS (SELECT 1 FROM endpoints) AS yes
), event AS (
    INSERT INTO common_outboxevent (
        id, created_at, updated_at, aggregate_type, aggregate_id, event_type,
        idempotency_key, payload, status, attempts, max_attempts, next_attempt_at,
        delivered_at, last_error
    )
    SELECT u.id, %(now)s, %(now)s, u.aggregate_type, u.aggregate_id, %(event_type)s,
           u.idempotency_key, u.payload::jsonb,
           CASE WHEN s.yes THEN 'pending' ELSE 'no_subscribers' END, 0, %(max_attempts)s,
           CASE WHEN s.yes THEN %(now)s::timestamptz END, NULL, ''
    FROM unnest(%(ids)s::uuid[], %(aggregate_types)s::text[], %(aggregate_ids)s::text[],
                %(keys)s::text[], %(payloads)s::text[])
         AS u(id, aggregate_type, aggregate_id, idempotency_key, payload)
    CROSS JOIN subscribed s
    ON CONFLICT (event_type, idempotency_key) DO NOTHING
    RETURNING id, status
), deliveries AS (
    INSERT INTO common_webhookdelivery (
        id, created_at, updated_at, event_id, endpoint_id, status, attempts,
        max_attempts, next_attempt_at, last_error, last_response
    )
    SELECT common_uuid7(), %(now)s, %(now)s, event.id, endpoints.id, 'pending', 0,
           %(max_attempts)s, %(now)s, '', ''
    FROM event CROSS JOIN endpoints
    RETURNING 1
)
SELECT event.id, event.status, (SELECT count(*) FROM deliveries) FROM event
"""


@dataclass(frozen=True)
class NewEvent:
    """One event of an ``emit_events`` call (all of one type)."""

    aggregate_type: str
    aggregate_id: Any
    payload: dict[str, Any]
    idempotency_key: str


def serialize_payload(payload: dict[str, Any]) -> str:
    """The payload as compact JSON, refused here if PostgreSQL could not store it.

    PostgreSQL's jsonb cannot hold NUL, nor NaN or Infinity (``allow_nan``
    raises ``ValueError`` for those); failing in SQL would abort the caller's
    transaction, so it is refused before any statement runs.
    """
    body = json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":"), allow_nan=False)
    if "\\u0000" in body:
        raise ValueError("event payloads cannot contain NUL characters")
    return body


def emit_event(
    *,
    event_type: str,
    aggregate_type: str,
    aggregate_id: Any,
    payload: dict[str, Any],
    idempotency_key: str | None = None,
    endpoint_ids: Sequence[Any] | None = None,
) -> OutboxEvent | None:
    """Record one domain event in the caller's transaction; deliver it after commit.

    The payload is serialized here so a value JSON cannot carry fails in the
    code that produced it, not later in a worker. The key defaults to
    ``"{aggregate_type}:{aggregate_id}"`` (one event of a type per
    aggregate); a key already used returns ``None``. ``endpoint_ids`` sends
    the event to exactly those endpoints (if active) instead of the
    subscribers: the "send a test event" button.
    """
    key = idempotency_key or f"{aggregate_type}:{aggregate_id}"
    event = NewEvent(aggregate_type, aggregate_id, payload, key)
    written = _write(event_type=event_type, events=[event], endpoint_ids=endpoint_ids)
    if not written.rows:
        return None
    event_id, status, deliveries = written.rows[0]
    model = OutboxEvent(
        id=event_id,
        created_at=written.now,
        updated_at=written.now,
        aggregate_type=aggregate_type,
        aggregate_id=str(aggregate_id),
        event_type=event_type,
        idempotency_key=key,
        payload=json.loads(written.bodies[0]),
        status=status,
        attempts=0,
        max_attempts=written.max_attempts,
        next_attempt_at=written.now if deliveries else None,
        delivered_at=None,
    )
    # The row as the statement wrote it, without reading it back.
    model._state.adding = False
    model._state.db = "default"
    return model


def emit_events(*, event_type: str, events: Sequence[NewEvent]) -> int:
    """``emit_event`` for many events of one type, in the same single statement.

    Returns how many were written (keys already used are skipped).
    """
    return len(_write(event_type=event_type, events=events, endpoint_ids=None).rows)


@dataclass(frozen=True)
class _Written:
    rows: list[tuple[Any, ...]]  # (event id, status, delivery rows of the statement)
    bodies: list[str]
    now: dt.datetime
    max_attempts: int


def _write(
    *, event_type: str, events: Sequence[NewEvent], endpoint_ids: Sequence[Any] | None
) -> _Written:
    bodies = [serialize_payload(e.payload) for e in events]
    max_attempts = int(settings.WEBHOOK_MAX_ATTEMPTS)
    now = timezone.now()
    if not events:
        return _Written(rows=[], bodies=bodies, now=now, max_attempts=max_attempts)
    rows = fetch_all(
        _EMIT_SQL,
        {
            "only": None if endpoint_ids is None else [str(i) for i in endpoint_ids],
            "event_type": event_type,
            "now": now,
            "max_attempts": max_attempts,
            "ids": [uuid7() for _ in events],
            "aggregate_types": [e.aggregate_type for e in events],
            "aggregate_ids": [str(e.aggregate_id) for e in events],
            "keys": [e.idempotency_key for e in events],
            "payloads": bodies,
        },
        # Runs once per upload: planning it each time cost three times its execution.
        prepare=True,
    )
    deliveries = rows[0][2] if rows else 0
    if deliveries:
        request_delivery_on_commit()
    logger.info(
        "%d outbox event(s) %s recorded with %d delivery row(s) (%d key(s) already used)",
        len(rows),
        event_type,
        deliveries,
        len(events) - len(rows),
    )
    return _Written(rows=rows, bodies=bodies, now=now, max_attempts=max_attempts)
