"""Celery tasks of the accounts app."""

from __future__ import annotations

import logging

from common.task_retry import retrying_task

logger = logging.getLogger(__name__)


@retrying_task(
    name="accounts.tasks.prune_sign_in_throttles_task",
    failure="Pruning sign-in throttles failed",
)
def prune_sign_in_throttles_task() -> dict:
    """Delete the sign-in counts whose cool-off ended (one row per pair tried)."""
    from accounts.services.sign_in_throttle import sign_in_throttles_prune

    deleted = sign_in_throttles_prune()
    logger.info("Sign-in throttles: %d expired counts deleted", deleted)
    return {"deleted": deleted}
