"""Retention: terminal events (with their deliveries and attempts) deleted after a while."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from common.models import OutboxEvent


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
