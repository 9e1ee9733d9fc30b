"""TTL cleanup: delete files whose ``expires_at`` has passed.

A stored file's ``expires_at`` is set when it is stored (its uploader's
``ttl_hours``, else ``FILE_UPLOAD_TTL_HOURS``); files without one (failed
and abandoned records) go ``FILE_UPLOAD_TTL_HOURS`` after they were created.

Order per run: pick at most ``batch_size`` expired rows, delete their objects
(no transaction open), then delete the rows and emit ``file.deleted`` in one
short transaction. A crash between the two leaves rows whose objects are
gone; the next run removes them, since a missing object is not an error.

A periodic run deletes at most ``CLEANUP_BATCH_SIZE`` files (the task note's
cap, to stay well inside the task time limit) and, while more are due,
queues a follow-up run at once (``cleanup_run``), so a backlog of any size
is gone long before the next beat tick instead of 1 000 files per interval.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from broker import task_waiting
from common.services.emit import NewEvent, emit_events
from portal.models import UploadFile, UploadSession
from portal.services.payloads import file_event_payload
from portal.services.stored_objects import delete_objects

logger = logging.getLogger(__name__)

CLEANUP_BATCH_SIZE = 1000


@dataclass(frozen=True)
class CleanupResult:
    deleted: int
    remaining: int


def expired_files(*, ttl_hours: int, now: datetime | None = None) -> QuerySet[UploadFile]:
    """Every file past its ``expires_at``, and files without one created over ``ttl_hours`` ago.

    Stored files carry their own expiry (the uploader's keep time); failed
    and abandoned records have none and keep the global age rule.
    Files held in ``scanning`` are not: they wait for the scanner or the hook
    and become stored (their keep time counted from then) or not; nothing
    held is lost.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(hours=ttl_hours)
    return UploadFile.objects.filter(
        Q(expires_at__lte=now) | Q(expires_at__isnull=True, created_at__lt=cutoff)
    ).exclude(status=UploadFile.Status.SCANNING)


def cleanup_expired_upload_files(
    *, ttl_hours: int, batch_size: int = CLEANUP_BATCH_SIZE, now: datetime | None = None
) -> CleanupResult:
    """Delete one batch of expired files: objects first, then rows and events."""
    now = now or timezone.now()
    expired = expired_files(ttl_hours=ttl_hours, now=now)
    candidates = list(
        expired.order_by("expires_at", "created_at").select_related("owner")[:batch_size]
    )
    if not candidates:
        return CleanupResult(deleted=0, remaining=0)

    undeletable = delete_objects(f.storage_key for f in candidates)
    by_id = {f.pk: f for f in candidates if f.storage_key not in undeletable}

    with transaction.atomic(durable=True):
        # Rows another run holds are its business; skip them.
        locked_ids = list(
            UploadFile.objects.filter(pk__in=list(by_id))
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        UploadFile.objects.filter(pk__in=locked_ids).delete()
        # Failed files were never announced, so there is nothing to retract.
        emit_events(
            event_type="file.deleted",
            events=[
                NewEvent(
                    aggregate_type="file",
                    aggregate_id=by_id[pk].id,
                    payload=file_event_payload(
                        by_id[pk], with_download_url=False, reason="expired"
                    ),
                    idempotency_key=str(pk),
                )
                for pk in locked_ids
                if by_id[pk].status == UploadFile.Status.STORED
            ],
        )
    remaining = expired.count()
    logger.info("TTL cleanup deleted %d files (%d remaining)", len(locked_ids), remaining)
    return CleanupResult(deleted=len(locked_ids), remaining=remaining)


def stale_uploading_files(
    *, stale_minutes: int, now: datetime | None = None
) -> QuerySet[UploadFile]:
    """``uploading`` records nothing has written to for ``stale_minutes``.

    A simple upload that is still streaming touches its record every few
    minutes (``uploads.HEARTBEAT_SECONDS``), so only abandoned ones (the
    process was killed, the database was down when the upload broke off)
    qualify. A record that belongs to a tus session still receiving bytes is
    left to that session's own expiry.
    """
    cutoff = (now or timezone.now()) - timedelta(minutes=stale_minutes)
    return UploadFile.objects.filter(
        Q(status=UploadFile.Status.UPLOADING) & Q(updated_at__lt=cutoff)
    ).exclude(upload_session__status=UploadSession.Status.ACTIVE)


def cleanup_stale_uploading_files(
    *, stale_minutes: int, batch_size: int = CLEANUP_BATCH_SIZE, now: datetime | None = None
) -> CleanupResult:
    """Delete abandoned ``uploading`` records and the partial objects they name.

    Without this they stayed listed (and their bytes stayed on disk) for the
    whole ``FILE_UPLOAD_TTL_HOURS``. Objects first, then the rows, as in TTL
    cleanup; no event, since an unfinished upload was never announced.
    """
    now = now or timezone.now()
    stale = stale_uploading_files(stale_minutes=stale_minutes, now=now)
    candidates = list(stale.order_by("updated_at").values_list("pk", "storage_key")[:batch_size])
    if not candidates:
        return CleanupResult(deleted=0, remaining=0)
    undeletable = delete_objects(key for _, key in candidates)
    ids = [pk for pk, key in candidates if key not in undeletable]
    with transaction.atomic(durable=True):
        # Re-checked under the row lock: an upload that finished meanwhile stays.
        locked = list(
            stale.filter(pk__in=ids)
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", flat=True)
        )
        UploadFile.objects.filter(pk__in=locked).delete()
    remaining = stale.count()
    logger.info("Removed %d abandoned uploads (%d remaining)", len(locked), remaining)
    return CleanupResult(deleted=len(locked), remaining=remaining)


# --- the periodic run and its follow-ups ----------------------------------------

CLEANUP_TASK = "portal.tasks.cleanup_expired_upload_files_task"
# Any fixed number: the session-level advisory lock one cleanup run holds, so
# runs (beat's, follow-ups, a retry) never work on the same rows at once.
_RUN_LOCK = 0x646F6F72_636C6E75


def cleanup_run(*, ttl_hours: int, batch_size: int = CLEANUP_BATCH_SIZE) -> CleanupResult:
    """One periodic run: a batch of at most ``batch_size``, then a follow-up if more are due.

    Only one run works at a time (a PostgreSQL advisory lock on this
    connection). A run that finds the lock taken deletes nothing and queues
    nothing: the holder counts what remains after its batch and queues the
    follow-up itself, so the chain never breaks and never forks. The lock is
    released before the follow-up is queued, so the follow-up can take it.
    With follow-ups a backlog of N files is drained in about N / 1 000 runs
    back to back (``bench/cleanup.py --follow-ups``), instead of 1 000 files
    per ``CLEANUP_UPLOADS_INTERVAL_HOURS``.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_RUN_LOCK])
        locked = bool(cursor.fetchone()[0])
    if not locked:
        remaining = expired_files(ttl_hours=ttl_hours).count()
        logger.info("TTL cleanup already running elsewhere (%d files due)", remaining)
        return CleanupResult(deleted=0, remaining=remaining)
    try:
        result = cleanup_expired_upload_files(ttl_hours=ttl_hours, batch_size=batch_size)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_RUN_LOCK])
    if result.remaining > 0 and result.deleted > 0:
        cleanup_follow_up_request()
    return result


def _cleanup_queue() -> str:
    route = settings.CELERY_TASK_ROUTES.get(CLEANUP_TASK, {})
    return str(route.get("queue", settings.CELERY_TASK_DEFAULT_QUEUE))


def cleanup_follow_up_request() -> bool:
    """Queue a cleanup run now, unless one is already waiting; True if one was sent.

    Duplicates cannot pile up: on the SQL broker a run that waits unfetched
    is seen (``broker.task_waiting``) and no second one is sent; on other
    brokers, or when a beat run meets a follow-up, the extra run finds the
    lock taken (or nothing due) and ends without queueing another. Eager
    mode (Dev without a worker) queues nothing: the next beat run continues.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return False
    queue = _cleanup_queue()
    try:
        waiting = task_waiting(current_app, task_name=CLEANUP_TASK, queue=queue)
    except Exception:
        logger.warning("Could not look for a waiting cleanup run; queueing one", exc_info=True)
        waiting = False
    if waiting:
        return False
    current_app.send_task(CLEANUP_TASK, queue=queue)
    return True
