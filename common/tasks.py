"""Celery tasks of the common app. Thin wrappers around services."""

from __future__ import annotations

import logging
import socket

from celery import shared_task

from common.task_retry import retrying_task

logger = logging.getLogger(__name__)


@shared_task(name="common.tasks.ping")
def ping() -> dict:
    """Proves a worker is consuming: remote control does not work on the SQL broker."""
    return {"pong": True, "hostname": socket.gethostname()}


@retrying_task(
    name="common.tasks.prune_broker_messages_task",
    failure="Pruning consumed broker messages failed",
)
def prune_broker_messages_task() -> dict:
    from broker import prune_consumed_broker_messages

    result = prune_consumed_broker_messages()
    logger.info("Pruned %d consumed broker messages (%d left)", result.deleted, result.remaining)
    return {"deleted": result.deleted, "remaining": result.remaining}


@retrying_task(
    name="common.tasks.deliver_outbox_events_task",
    failure="Delivering outbox events failed",
    # Runs back to back under load and lasts milliseconds: a STARTED row per
    # run would be one more write per 20 events, for a state nobody sees.
    track_started=False,
)
def deliver_outbox_events_task() -> dict:
    """Deliver due webhook deliveries (on commit of an event, and every sweep)."""
    from django.conf import settings

    from common.services.dispatch import process_pending_events

    # Due work left over is picked up by a run queued at once, not the sweep.
    result = process_pending_events(
        batch_size=settings.DELIVERY_BATCH_SIZE, continue_in_background=True
    )
    logger.info(
        "Outbox delivery: %d processed, %d delivered, %d failed, %d remaining",
        result.processed,
        result.delivered,
        result.failed,
        result.remaining,
    )
    return result.as_dict()


@retrying_task(
    name="common.tasks.cleanup_delivered_outbox_events_task",
    failure="Cleaning up delivered outbox events failed",
)
def cleanup_delivered_outbox_events_task() -> dict:
    """Delete terminal outbox events older than ``OUTBOX_RETENTION_HOURS``."""
    from django.conf import settings

    from common.services.retention import cleanup_delivered_events

    retention_hours = getattr(settings, "OUTBOX_RETENTION_HOURS", 168)
    result = cleanup_delivered_events(retention_hours=retention_hours)
    logger.info("Deleted %d old outbox events (%d left)", result.deleted, result.remaining)
    return {"deleted": result.deleted, "remaining": result.remaining}
