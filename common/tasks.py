"""Celery tasks of the common app. Thin wrappers around services."""

from __future__ import annotations

import logging
import socket

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="common.tasks.ping")
def ping() -> dict:
    """Proves a worker is consuming: remote control does not work on the SQL broker."""
    return {"pong": True, "hostname": socket.gethostname()}


@shared_task(
    name="common.tasks.prune_broker_messages_task",
    bind=True,
    max_retries=2,
    default_retry_delay=60,
)
def prune_broker_messages_task(self) -> dict:
    from common.services.broker import prune_consumed_broker_messages

    try:
        result = prune_consumed_broker_messages()
    except Exception as exc:
        logger.exception("Pruning consumed broker messages failed")
        raise self.retry(exc=exc) from exc
    logger.info("Pruned %d consumed broker messages (%d left)", result.deleted, result.remaining)
    return {"deleted": result.deleted, "remaining": result.remaining}


@shared_task(
    name="common.tasks.deliver_outbox_events_task",
    bind=True,
    max_retries=2,
    default_retry_delay=60,
    # Runs back to back under load and lasts milliseconds: a STARTED row per
    # run would be one more write per 20 events, for a state nobody sees.
    track_started=False,
)
def deliver_outbox_events_task(self) -> dict:
    """Deliver due webhook deliveries (on commit of an event, and every sweep)."""
    from django.conf import settings

    from common.services.dispatch import process_pending_events

    try:
        # Due work left over is picked up by a run queued at once, not the sweep.
        result = process_pending_events(
            batch_size=settings.DELIVERY_BATCH_SIZE, continue_in_background=True
        )
    except Exception as exc:
        logger.exception("Delivering outbox events failed")
        raise self.retry(exc=exc) from exc
    logger.info(
        "Outbox delivery: %d processed, %d delivered, %d failed, %d remaining",
        result.processed,
        result.delivered,
        result.failed,
        result.remaining,
    )
    return result.as_dict()


@shared_task(
    name="common.tasks.cleanup_delivered_outbox_events_task",
    bind=True,
    max_retries=2,
    default_retry_delay=60,
)
def cleanup_delivered_outbox_events_task(self) -> dict:
    """Delete terminal outbox events older than ``OUTBOX_RETENTION_HOURS``."""
    from django.conf import settings

    from common.services.retention import cleanup_delivered_events

    retention_hours = getattr(settings, "OUTBOX_RETENTION_HOURS", 168)
    try:
        result = cleanup_delivered_events(retention_hours=retention_hours)
    except Exception as exc:
        logger.exception("Cleaning up delivered outbox events failed")
        raise self.retry(exc=exc) from exc
    logger.info("Deleted %d old outbox events (%d left)", result.deleted, result.remaining)
    return {"deleted": result.deleted, "remaining": result.remaining}
