"""Event summaries and endpoint disabling (shared by delivery, re-sends, deletes).

An event's own status/attempts/next_attempt_at summarise its per-endpoint
deliveries; whoever changes deliveries recomputes it with the events locked.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from common.models import WebhookDelivery, WebhookEndpoint
from common.services.sql import fetch_all

logger = logging.getLogger(__name__)

D = WebhookDelivery.Status


# An event left with no delivery at all (its only endpoints were deleted) is
# ``no_subscribers`` — unless it had been delivered before, which stays so.
# Without the LEFT JOIN such an event had no summary row and stayed
# ``pending`` for ever.
_SUMMARY_SQL = """
UPDATE common_outboxevent e SET
    status = CASE WHEN s.total = 0 AND e.delivered_at IS NOT NULL THEN 'delivered'
                  WHEN s.total = 0 THEN 'no_subscribers'
                  WHEN s.open > 0 THEN 'pending'
                  WHEN s.failed > 0 THEN 'failed'
                  ELSE 'delivered' END,
    attempts = COALESCE(s.attempts, e.attempts),
    next_attempt_at = s.next_at,
    delivered_at = CASE WHEN s.total > 0 AND s.open = 0 AND s.failed = 0
                        THEN COALESCE(e.delivered_at, %s)
                        ELSE e.delivered_at END,
    last_error = COALESCE(s.last_error, ''),
    updated_at = %s
FROM (
    SELECT ids.event_id,
           count(d.id) AS total,
           count(d.id) FILTER (WHERE d.status IN ('pending', 'sending')) AS open,
           count(d.id) FILTER (WHERE d.status = 'failed') AS failed,
           max(d.attempts) AS attempts,
           min(d.next_attempt_at) FILTER (WHERE d.status = 'pending') AS next_at,
           max(d.last_error) FILTER (WHERE d.status <> 'delivered' AND d.last_error <> '')
               AS last_error
    FROM unnest(%s::uuid[]) AS ids(event_id)
    LEFT JOIN common_webhookdelivery d ON d.event_id = ids.event_id
    GROUP BY ids.event_id
) s
WHERE e.id = ANY(%s) AND e.id = s.event_id
RETURNING e.id, e.status
"""
# ``e.id = ANY(...)`` repeats what the join implies: without it the planner,
# working from statistics of a smaller table, hash-joined against a scan of
# every event (2 ms per run at 12 000 events instead of 0.2 ms).


def lock_events(event_ids: list[Any]) -> None:
    """Serialise summary updates of the same events (id order: no deadlocks)."""
    fetch_all(
        "SELECT id FROM common_outboxevent WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
        [event_ids],
    )


def summarize_events(event_ids: list[Any], now: dt.datetime) -> dict[Any, str]:
    """Recompute each event's summary from its deliveries; call with the events locked."""
    if not event_ids:
        return {}
    return dict(fetch_all(_SUMMARY_SQL, [now, now, event_ids, event_ids]))


def disable_endpoint(*, endpoint_id: Any, reason: str) -> int:
    """Deactivate an endpoint and fail its pending deliveries (events can finish).

    Returns how many pending deliveries were failed. They can be re-sent once
    the endpoint is enabled again.
    """
    now = timezone.now()
    with transaction.atomic(durable=True):
        updated = WebhookEndpoint.objects.filter(id=endpoint_id, is_active=True).update(
            is_active=False, disabled_reason=reason[:255], updated_at=now
        )
        if not updated:
            return 0
        event_ids = list(
            WebhookDelivery.objects.filter(endpoint_id=endpoint_id, status=D.PENDING)
            .order_by()
            .values_list("event_id", flat=True)
        )
        lock_events(sorted(event_ids, key=str))
        failed = WebhookDelivery.objects.filter(endpoint_id=endpoint_id, status=D.PENDING).update(
            status=D.FAILED,
            next_attempt_at=None,
            last_error=f"endpoint disabled: {reason}"[:2000],
            updated_at=now,
        )
        summarize_events(sorted(event_ids, key=str), now)
    logger.warning("Webhook endpoint %s disabled: %s", endpoint_id, reason)
    return failed
