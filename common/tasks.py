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
