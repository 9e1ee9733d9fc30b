"""The transactional outbox: events are rows written with the change they describe.

Delivery is a separate concern (``common.services.delivery``); this module
writes events, fans them out to the subscribed endpoints (in the same
transaction, so a crash after commit loses nothing) and asks for a delivery
run once the transaction commits.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone
from uuid_utils.compat import uuid7

from common.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from common.services.sql import fetch_all

logger = logging.getLogger(__name__)

# The event and its delivery rows in one statement (one round trip per event,
# and the endpoints read in the same snapshot as the rows are written). With
# ``only`` NULL the active endpoints subscribed to the type receive it; else
# exactly the listed ones, if active (a test event).
_EMIT_SQL = """
WITH endpoints AS (
    SELECT id FROM common_webhookendpoint
    WHERE is_active AND CASE
        WHEN %(only)s::uuid[] IS NULL
            THEN event_types = '[]'::jsonb OR event_types ? %(event_type)s
        ELSE id = ANY(%(only)s::uuid[])
    END
),
event AS (
    INSERT INTO common_outboxevent (
        id, created_at, updated_at, aggregate_type, aggregate_id, event_type,
        idempotency_key, payload, status, attempts, max_attempts, next_attempt_at,
        delivered_at, last_error
    )
    SELECT %(id)s, %(now)s, %(now)s, %(aggregate_type)s, %(aggregate_id)s, %(event_type)s,
           %(key)s, %(payload)s::jsonb,
           CASE WHEN subscribed THEN 'pending' ELSE 'delivered' END, 0, %(max_attempts)s,
           CASE WHEN subscribed THEN %(now)s END,
           CASE WHEN subscribed THEN NULL ELSE %(now)s END, ''
    FROM (SELECT EXISTS (SELECT 1 FROM endpoints) AS subscribed) s
    ON CONFLICT (event_type, idempotency_key) DO NOTHING
    RETURNING id, status
),
deliveries AS (
    INSERT INTO common_webhookdelivery (
        id, created_at, updated_at, event_id, endpoint_id, status, attempts,
        max_attempts, next_attempt_at, last_error, last_response
    )
    SELECT common_uuid7(), %(now)s, %(now)s, event.id, endpoints.id, 'pending', 0,
           %(max_attempts)s, %(now)s, '', ''
    FROM event CROSS JOIN endpoints
    RETURNING 1
)
SELECT event.status, (SELECT count(*) FROM deliveries) FROM event
"""


def serialize_payload(payload: dict[str, Any]) -> str:
    """The payload as compact JSON, refused here if PostgreSQL could not store it.

    PostgreSQL's jsonb cannot hold NUL; failing in SQL would abort the
    caller's transaction, so it is refused before any statement runs.
    """
    body = json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":"))
    if "\\u0000" in body:
        raise ValueError("event payloads cannot contain NUL characters")
    return body


def subscribed_endpoints(event_type: str) -> list[WebhookEndpoint]:
    return [
        ep
        for ep in WebhookEndpoint.objects.filter(is_active=True).only("id", "event_types")
        if ep.subscribes_to(event_type)
    ]


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
    i.e. one event of a type per aggregate. Every subscribed active endpoint
    gets a delivery row, written by the same statement.
    """
    return create_event(
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        event_type=event_type,
        payload=payload,
        idempotency_key=idempotency_key,
        endpoint_ids=None,
    )


def create_event(
    *,
    aggregate_type: str,
    aggregate_id: Any,
    event_type: str,
    payload: dict[str, Any],
    idempotency_key: str | None,
    endpoint_ids: list[Any] | None,
) -> OutboxEvent | None:
    """Insert an event and its delivery rows in one statement.

    ``endpoint_ids=None`` means every subscribed active endpoint
    (``emit_event``); a list means exactly those, if active (a test event).
    Returns ``None`` when the idempotency key was already used. Uploads emit
    inside their request, so this is one round trip, not three.
    """
    body = serialize_payload(payload)
    key = idempotency_key or f"{aggregate_type}:{aggregate_id}"
    max_attempts = settings.WEBHOOK_MAX_ATTEMPTS
    now = timezone.now()
    event_id = uuid7()
    rows = fetch_all(
        _EMIT_SQL,
        {
            "only": None if endpoint_ids is None else [str(i) for i in endpoint_ids],
            "event_type": event_type,
            "id": event_id,
            "now": now,
            "aggregate_type": aggregate_type,
            "aggregate_id": str(aggregate_id),
            "key": key,
            "payload": body,
            "max_attempts": max_attempts,
        },
        prepare=True,
    )
    inserted = rows[0] if rows else None
    if inserted is None:
        logger.info("Outbox event %s %s already recorded; skipped", event_type, key)
        return None
    status, deliveries = inserted
    if deliveries:
        request_delivery_on_commit()
    event = OutboxEvent(
        id=event_id,
        created_at=now,
        updated_at=now,
        aggregate_type=aggregate_type,
        aggregate_id=str(aggregate_id),
        event_type=event_type,
        idempotency_key=key,
        payload=json.loads(body),
        status=status,
        attempts=0,
        max_attempts=max_attempts,
        next_attempt_at=now if deliveries else None,
        delivered_at=None if deliveries else now,
    )
    event._state.adding = False
    event._state.db = "default"
    logger.info("Outbox event %s %s recorded for %d endpoint(s)", event_type, event_id, deliveries)
    return event


def _fan_out(
    event_ids: list[Any],
    endpoints: list[WebhookEndpoint],
    *,
    max_attempts: int,
    now: dt.datetime,
) -> None:
    """One delivery row per (event, endpoint), then ask for a run after commit."""
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
            for event_id in event_ids
            for ep in endpoints
        ],
        batch_size=1000,
    )
    request_delivery_on_commit()


@dataclass(frozen=True)
class EventSpec:
    """One event of a bulk ``emit_events`` call."""

    aggregate_type: str
    aggregate_id: Any
    payload: dict[str, Any]
    idempotency_key: str


_INSERT_EVENTS_SQL = """
INSERT INTO common_outboxevent (
    id, created_at, updated_at, aggregate_type, aggregate_id, event_type,
    idempotency_key, payload, status, attempts, max_attempts, next_attempt_at,
    delivered_at, last_error
)
SELECT u.id, %(now)s, %(now)s, u.aggregate_type, u.aggregate_id, %(event_type)s,
       u.idempotency_key, u.payload::jsonb, %(status)s, 0, %(max_attempts)s,
       %(next_attempt_at)s, %(delivered_at)s, ''
FROM unnest(%(ids)s::uuid[], %(aggregate_types)s::text[], %(aggregate_ids)s::text[],
            %(keys)s::text[], %(payloads)s::text[])
     AS u(id, aggregate_type, aggregate_id, idempotency_key, payload)
ON CONFLICT (event_type, idempotency_key) DO NOTHING
RETURNING id
"""


def emit_events(*, event_type: str, events: list[EventSpec]) -> int:
    """``emit_event`` for many events of one type, in a few statements.

    TTL cleanup emits up to 1000 ``file.deleted`` at once; a round trip per
    event would cost more than the deletions. Same rows as ``emit_event``
    (the event, one delivery per subscribed active endpoint, a delivery run
    requested on commit); keys already used are skipped by the same
    ``ON CONFLICT DO NOTHING``. Runs in the caller's transaction; returns how
    many events were written.
    """
    if not events:
        return 0
    bodies = [serialize_payload(e.payload) for e in events]
    endpoints = subscribed_endpoints(event_type)
    now = timezone.now()
    max_attempts = settings.WEBHOOK_MAX_ATTEMPTS
    params = {
        "now": now,
        "event_type": event_type,
        "status": OutboxEvent.Status.PENDING if endpoints else OutboxEvent.Status.DELIVERED,
        "max_attempts": max_attempts,
        "next_attempt_at": now if endpoints else None,
        "delivered_at": None if endpoints else now,
        "ids": [uuid7() for _ in events],
        "aggregate_types": [e.aggregate_type for e in events],
        "aggregate_ids": [str(e.aggregate_id) for e in events],
        "keys": [e.idempotency_key for e in events],
        "payloads": bodies,
    }
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(_INSERT_EVENTS_SQL, params)
        inserted = [row[0] for row in cursor.fetchall()]
        if inserted and endpoints:
            _fan_out(inserted, endpoints, max_attempts=max_attempts, now=now)
    logger.info(
        "%d outbox events %s recorded (%d skipped)",
        len(inserted),
        event_type,
        len(events) - len(inserted),
    )
    return len(inserted)


def _send_delivery_task() -> None:
    """Queue a delivery run, unless one is queued and not yet picked up.

    A waiting run claims after this moment, so it takes the events this
    transaction committed (or a follow-up's remaining work) as well. Under
    load (every web request committing one event, or a backlog) the queue
    would otherwise fill with runs that each find one event or none (one
    event per transaction from one process: ~250 → ~400 delivered/s on two
    cores). Only the SQL broker can tell; with another broker every commit
    queues a run, as before.
    """
    from common.tasks import deliver_outbox_events_task

    if not settings.CELERY_TASK_ALWAYS_EAGER and _delivery_run_waiting():
        return
    deliver_outbox_events_task.delay()


def _delivery_run_waiting() -> bool:
    from boot.broker import task_waiting
    from boot.celery import app
    from common.tasks import deliver_outbox_events_task

    name = deliver_outbox_events_task.name
    queue = settings.CELERY_TASK_ROUTES.get(name, {}).get(
        "queue", settings.CELERY_TASK_DEFAULT_QUEUE
    )
    try:
        return task_waiting(app, task_name=name, queue=queue)
    except Exception:
        logger.warning("Could not look for a waiting delivery run; queueing one", exc_info=True)
        return False


def request_delivery_on_commit() -> None:
    """Ask for a delivery run once the current transaction commits.

    Only a shortcut: the beat sweep delivers anyway if the message is lost.
    One message per transaction, however many events it wrote.
    """
    pending = getattr(connection, "run_on_commit", [])
    if any(func is _send_delivery_task for _, func, _ in pending):
        return
    transaction.on_commit(_send_delivery_task, robust=True)


def request_delivery_run() -> None:
    """Queue a delivery run now (used when a run leaves due work behind)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        # In-process tasks would recurse; the next emit or sweep continues.
        return
    _send_delivery_task()


def request_delivery_run_at(when: dt.datetime) -> None:
    """Queue a delivery run for ``when`` (a retry's ``next_attempt_at``).

    The worker that fetches it holds it until then (Celery's ETA), so a
    failed delivery is tried again on its schedule instead of at the next
    sweep. If that worker dies the message is gone with it (the SQL broker
    consumes on fetch); the sweep still finds the retry.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return
    from common.tasks import deliver_outbox_events_task

    deliver_outbox_events_task.apply_async(eta=when)


def process_pending_events(batch_size: int = 20, *, continue_in_background: bool = False):
    """Deliver the due deliveries of up to ``batch_size`` events.

    With ``continue_in_background`` (the Celery task) a further run is queued
    whenever due work is left, instead of waiting for the beat sweep.
    Returns a ``DeliveryRunResult`` (``.as_dict()`` is the task's
    ``{"processed", "delivered", "failed", "remaining"}``).
    """
    from common.services.delivery import run_delivery_batch

    return run_delivery_batch(
        batch_size=batch_size,
        request_followup=request_delivery_run if continue_in_background else None,
        request_retry_at=request_delivery_run_at if continue_in_background else None,
    )


def _resummarize(event_ids: list) -> None:
    from common.services.event_state import lock_events, summarize_events

    ids = sorted(set(event_ids), key=str)
    lock_events(ids)
    summarize_events(ids, timezone.now())


def delivery_resend(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Queue a delivery again with a fresh attempt budget (same ``webhook-id``).

    Used for failed deliveries and to replay delivered ones; a delivery that
    is being sent right now cannot be re-sent.
    """
    from common.exceptions import ConflictError

    now = timezone.now()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update()
            .select_related("endpoint")
            .get(pk=delivery.pk)
        )
        if delivery.status == WebhookDelivery.Status.SENDING:
            raise ConflictError("This delivery is being sent right now.")
        if not delivery.endpoint.is_active:
            raise ConflictError("The endpoint is disabled; enable it before re-sending.")
        delivery.status = WebhookDelivery.Status.PENDING
        delivery.attempts = 0
        delivery.next_attempt_at = now
        delivery.lease_expires_at = None
        delivery.save(
            update_fields=[
                "status",
                "attempts",
                "next_attempt_at",
                "lease_expires_at",
                "updated_at",
            ]
        )
        _resummarize([delivery.event_id])
        request_delivery_on_commit()
    logger.info("Delivery %s queued for re-sending", delivery.id)
    return delivery


RESEND_CHUNK_SIZE = 500


def deliveries_resend_failed(
    *,
    since: dt.datetime,
    endpoint: WebhookEndpoint | None = None,
    chunk_size: int = RESEND_CHUNK_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Queue every delivery that failed at or after ``since`` again; returns how many.

    Deliveries to disabled endpoints are left alone (they would fail at once).
    The deliveries found when the call starts are re-queued ``chunk_size`` at
    a time, one short transaction each: a re-send of thousands neither locks
    them all at once nor leaves the operator without news —
    ``progress(done, total)`` is called after each chunk. A delivery that
    fails again meanwhile is not picked up a second time.
    """
    qs = WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.FAILED, updated_at__gte=since, endpoint__is_active=True
    )
    if endpoint is not None:
        qs = qs.filter(endpoint=endpoint)
    ids = list(qs.order_by("id").values_list("id", flat=True))
    queued = 0
    for start in range(0, len(ids), chunk_size):
        now = timezone.now()
        with transaction.atomic():
            rows = list(
                WebhookDelivery.objects.filter(
                    id__in=ids[start : start + chunk_size], status=WebhookDelivery.Status.FAILED
                )
                .select_for_update(of=("self",))
                .values_list("id", "event_id")
            )
            if rows:
                WebhookDelivery.objects.filter(id__in=[r[0] for r in rows]).update(
                    status=WebhookDelivery.Status.PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    lease_expires_at=None,
                    updated_at=now,
                )
                _resummarize([r[1] for r in rows])
                request_delivery_on_commit()
        queued += len(rows)
        if progress is not None:
            progress(min(start + chunk_size, len(ids)), len(ids))
    if queued:
        logger.info("%d failed deliveries queued for re-sending", queued)
    return queued


@dataclass(frozen=True)
class CleanupResult:
    deleted: int
    remaining: int


CLEANUP_BATCH_SIZE = 1000


def cleanup_delivered_events(retention_hours: int = 168) -> CleanupResult:
    """Delete up to 1000 terminal events (their deliveries and attempts) older than the retention.

    Pending events are never touched, however old: they are still owed to
    someone. Age is the event's creation time.
    """
    cutoff = timezone.now() - dt.timedelta(hours=retention_hours)
    terminal = [OutboxEvent.Status.DELIVERED, OutboxEvent.Status.FAILED]
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT id FROM common_outboxevent
            WHERE status = ANY(%s) AND created_at < %s
            ORDER BY created_at LIMIT %s
            FOR UPDATE SKIP LOCKED
            """,
            [terminal, cutoff, CLEANUP_BATCH_SIZE],
        )
        ids = [r[0] for r in cursor.fetchall()]
        if ids:
            # Children first, each in one statement: the foreign keys cascade
            # in Django, not in the database. Attempts are found through the
            # deliveries' (event, endpoint) index and their (delivery,
            # created_at) one.
            cursor.execute(
                """
                DELETE FROM common_webhookdeliveryattempt a
                USING common_webhookdelivery d
                WHERE a.delivery_id = d.id AND d.event_id = ANY(%s)
                """,
                [ids],
            )
            cursor.execute("DELETE FROM common_webhookdelivery WHERE event_id = ANY(%s)", [ids])
            cursor.execute("DELETE FROM common_outboxevent WHERE id = ANY(%s)", [ids])
    remaining = OutboxEvent.objects.filter(status__in=terminal, created_at__lt=cutoff).count()
    return CleanupResult(deleted=len(ids), remaining=remaining)
