"""Celery tasks of the portal app (names, schedules, returns: the seed note)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from common.task_retry import MAX_RETRIES, RETRY_DELAY_SECONDS, retrying_task

logger = logging.getLogger(__name__)


@retrying_task(
    name="portal.tasks.cleanup_expired_upload_files_task",
    failure="TTL cleanup of upload files failed",
)
def cleanup_expired_upload_files_task() -> dict:
    """Delete at most 1000 expired files; queue a follow-up run while more are due.

    Files without their own ``expires_at`` (failed, abandoned) expire
    ``FILE_UPLOAD_TTL_HOURS`` after creation.
    """
    from django.conf import settings

    from portal.services.cleanup import cleanup_run

    ttl_hours = getattr(settings, "FILE_UPLOAD_TTL_HOURS", 24)
    result = cleanup_run(ttl_hours=ttl_hours)
    logger.info("TTL cleanup: deleted %d files, %d remaining", result.deleted, result.remaining)
    return {"deleted": result.deleted, "remaining": result.remaining}


@retrying_task(
    name="portal.tasks.notify_expiring_files_task",
    failure="Expiry notices failed",
)
def notify_expiring_files_task() -> dict:
    """Emit one ``file.expiring`` per stored file close to its TTL."""
    from django.conf import settings

    from portal.services.expiry import notify_expiring_files

    ttl_hours = getattr(settings, "FILE_UPLOAD_TTL_HOURS", 24)
    notify_hours = getattr(settings, "FILE_UPLOAD_EXPIRY_NOTIFY_HOURS", 1)
    result = notify_expiring_files(ttl_hours=ttl_hours, notify_hours=notify_hours)
    logger.info("Expiry notices: %d notified, %d skipped", result.notified, result.skipped)
    return {"notified": result.notified, "skipped": result.skipped}


@retrying_task(
    name="portal.tasks.expire_stale_upload_sessions_task",
    failure="Expiring stale upload sessions failed",
)
def expire_stale_upload_sessions_task() -> dict:
    """Expire resumable uploads past ``Upload-Expires`` and delete their partial data;
    remove simple uploads abandoned for ``UPLOAD_STALE_MINUTES`` with their bytes."""
    from django.conf import settings

    from portal.services.cleanup import cleanup_stale_uploading_files
    from portal.services.tus.expiry import upload_sessions_expire

    stale_minutes = getattr(settings, "UPLOAD_STALE_MINUTES", 60)
    result = upload_sessions_expire()
    stale = cleanup_stale_uploading_files(stale_minutes=stale_minutes)
    logger.info(
        "Upload sessions: %d expired, %d remaining, %d parts deleted",
        result.expired,
        result.remaining,
        result.purged_parts,
    )
    logger.info("Abandoned uploads: %d removed, %d remaining", stale.deleted, stale.remaining)
    return {
        "expired": result.expired,
        "remaining": result.remaining,
        "stale_files_deleted": stale.deleted,
    }


@shared_task(
    name="portal.tasks.verify_file_task",
    ignore_result=True,
    # The lease of verification's claim (LEASE_SECONDS): the scan of a big
    # file on a busy scanner outlasts the default 300 s.
    time_limit=900,
    soft_time_limit=870,
)
def verify_file_task(file_id: str) -> dict:
    """Scan one received file, ask the pre-store hook, then store, quarantine,
    reject or hold it (``portal.services.verification``)."""
    from portal.services.verification import verify_file

    outcome = verify_file(file_id)
    return {"file_id": file_id, "outcome": outcome.status, "reason": outcome.reason}


@retrying_task(
    name="portal.tasks.verify_held_files_task",
    failure="Queueing held files for verification failed",
)
def verify_held_files_task() -> dict:
    """Queue every ``scanning`` file whose backoff or lease has passed."""
    from portal.services.verification import verify_held_files

    queued = verify_held_files()
    if queued:
        logger.info("Verification sweep: %d held files queued", queued)
    return {"queued": queued}


@retrying_task(
    name="portal.tasks.finish_idle_upload_request_submissions_task",
    failure="Finishing idle upload request submissions failed",
)
def finish_idle_upload_request_submissions_task() -> dict:
    """Send what senders who left without finishing had stored (event, owner's email)."""
    from django.conf import settings

    from portal.services.upload_requests import submissions_finish_idle

    return submissions_finish_idle(idle_minutes=int(settings.UPLOAD_REQUEST_IDLE_MINUTES))


@shared_task(
    name="portal.tasks.upload_request_notify_owner_task",
    bind=True,
    max_retries=MAX_RETRIES,
    default_retry_delay=RETRY_DELAY_SECONDS,
)
def upload_request_notify_owner_task(self: Any, submission_id: str) -> dict:
    """Email an upload request's owner that a sender's files arrived (retried if SMTP fails)."""
    from portal.services.upload_requests import upload_request_notify_owner

    try:
        sent = upload_request_notify_owner(submission_id=submission_id)
    except Exception as exc:
        logger.exception("Upload request notice failed")
        raise self.retry(exc=exc) from exc
    return {"sent": sent}
