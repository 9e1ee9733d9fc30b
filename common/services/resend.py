"""Re-sending deliveries: one, or every failed one since a time, with a fresh budget.

A re-send keeps the event's ``webhook-id`` (receivers de-duplicate on it)
and resets the delivery's attempts; the event's summary is recomputed with
the event locked, as every change of deliveries does.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from common.exceptions import ConflictError
from common.models import WebhookDelivery, WebhookEndpoint
from common.services.event_state import lock_events, summarize_events
from common.services.scheduling import request_delivery_on_commit

logger = logging.getLogger(__name__)


def _resummarize(event_ids: list[Any]) -> None:
    ids = sorted(set(event_ids), key=str)
    lock_events(ids)
    summarize_events(ids, timezone.now())


def delivery_resend(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Queue a delivery again with a fresh attempt budget (same ``webhook-id``).

    Used for failed deliveries and to replay delivered ones; a delivery that
    is being sent right now cannot be re-sent.
    """
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
