"""TTL cleanup: delete files older than ``FILE_UPLOAD_TTL_HOURS``.

Order per run: pick at most ``batch_size`` expired rows, delete their objects
(no transaction open), then delete the rows and emit ``file.deleted`` in one
short transaction. A crash between the two leaves rows whose objects are
gone; the next run removes them, since a missing object is not an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

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
    """Every file (stored, failed or abandoned) created more than ``ttl_hours`` ago.

    Files held in ``scanning`` are not: they wait for the scanner or the hook
    and become stored (with a fresh TTL) or not; nothing held is lost.
    """
    cutoff = (now or timezone.now()) - timedelta(hours=ttl_hours)
    return UploadFile.objects.filter(created_at__lt=cutoff).exclude(
        status=UploadFile.Status.SCANNING
    )


def cleanup_expired_upload_files(
    *, ttl_hours: int, batch_size: int = CLEANUP_BATCH_SIZE, now: datetime | None = None
) -> CleanupResult:
    """Delete one batch of expired files: objects first, then rows and events."""
    now = now or timezone.now()
    expired = expired_files(ttl_hours=ttl_hours, now=now)
    candidates = list(expired.order_by("created_at").select_related("owner")[:batch_size])
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
