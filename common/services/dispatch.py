"""A delivery run: what ``deliver_outbox_events_task`` and ``manage.py webhooks deliver`` call."""

from __future__ import annotations

from common.services.delivery import DeliveryRunResult, run_delivery_batch
from common.services.scheduling import request_delivery_run, request_delivery_run_at


def process_pending_events(
    batch_size: int = 20, *, continue_in_background: bool = False
) -> DeliveryRunResult:
    """Deliver the due deliveries of up to ``batch_size`` events.

    With ``continue_in_background`` (the Celery task) a further run is queued
    whenever due work is left, instead of waiting for the beat sweep.
    """
    return run_delivery_batch(
        batch_size=batch_size,
        request_followup=request_delivery_run if continue_in_background else None,
        request_retry_at=request_delivery_run_at if continue_in_background else None,
    )
