"""Retention: ended events (with their deliveries and attempts) deleted after a while."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from common.models import OutboxEvent
from common.services.event_state import summarize_events


@dataclass(frozen=True)
class CleanupResult:
    deleted: int
    remaining: int


CLEANUP_BATCH_SIZE = 1000


def cleanup_delivered_events(retention_hours: int = 168) -> CleanupResult:
    """Delete up to 1000 ended events (their deliveries and attempts) older than the retention.

    Ended: delivered, failed, or with no subscriber. Events still ``pending``
    past the retention are summarised again first: one whose summary went
    stale (its deliveries all ended, or were deleted with their endpoint)
    ends now and goes in the same run; one that still has a delivery owed to
    someone is kept, however old. Age is the event's creation time.
    """
    now = timezone.now()
    cutoff = now - dt.timedelta(hours=retention_hours)
    terminal = list(OutboxEvent.TERMINAL_STATUSES)
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        # Locked in id order like every summary update (no deadlock), skipping
        # those a delivery run holds (it summarises them itself).
        cursor.execute(
            """
            SELECT id FROM common_outboxevent
            WHERE status = 'pending' AND created_at < %s
            ORDER BY id LIMIT %s
            FOR UPDATE SKIP LOCKED
            """,
            [cutoff, CLEANUP_BATCH_SIZE],
        )
        summarize_events([r[0] for r in cursor.fetchall()], now)
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
