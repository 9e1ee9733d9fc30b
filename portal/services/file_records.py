"""File records: bytes already in storage recorded as a stored (or refused) file; deletes.

A stored record, its batch counters and its ``file.stored`` event commit in
one transaction; a refused file gets a failed record (for the owner's and
the batch's history) with no bytes and no event.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.exceptions import PermissionDeniedError, ValidationError
from common.services.emit import emit_event
from common.services.text import clean_text
from portal.models import UploadBatch, UploadFile
from portal.services.batches import (
    batch_check_accepts_received,
    batch_record_file_ended,
    clean_metadata,
)
from portal.services.clamd import scanning_enabled
from portal.services.payloads import file_event_payload
from portal.services.stored_objects import delete_object
from portal.services.upload_hooks import hook_enabled

logger = logging.getLogger(__name__)

MAX_FILENAME_LENGTH = 255


def clean_filename(filename: Any) -> str:
    """The original name as data: storable text, at most 255 chars.

    It is never used as a path, so separators and dots stay as given. A name
    with NUL or an unpaired surrogate is refused (400 naming ``filename``)
    rather than silently changed. A long name is cut in the middle of its
    stem so the extension survives.
    """
    name = clean_text(str(filename or ""), field="filename")
    if not name.strip():
        name = "unnamed"
    if len(name) > MAX_FILENAME_LENGTH:
        stem, dot, ext = name.rpartition(".")
        if stem and dot and 0 < len(ext) <= 16:
            name = stem[: MAX_FILENAME_LENGTH - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_FILENAME_LENGTH]
    return name


MIN_TTL_HOURS = 1


def clean_ttl_hours(value: Any, *, field: str = "ttl_hours") -> int | None:
    """An uploader's keep time in whole hours, or ``None`` for the default.

    From 1 hour up to ``FILE_UPLOAD_MAX_TTL_HOURS``; anything else (not a
    whole number, out of range) is a 400 naming ``field`` before anything is
    written. Empty means "not given".
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    limit = int(settings.FILE_UPLOAD_MAX_TTL_HOURS)
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(value)
        hours = int(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"{field} must be a whole number of hours.", details={"field": field}
        ) from None
    if not MIN_TTL_HOURS <= hours <= limit:
        raise ValidationError(
            f"{field} must be between {MIN_TTL_HOURS} and {limit} hours.",
            details={"field": field, "min": MIN_TTL_HOURS, "max": limit, "value": hours},
        )
    return hours


def default_ttl_hours() -> int:
    return int(getattr(settings, "FILE_UPLOAD_TTL_HOURS", 24))


def upload_file_record_failed(
    *,
    owner: Any,
    filename: str,
    content_type: str,
    batch: UploadBatch | None,
    metadata: dict[str, Any],
    error_message: str,
    size: int = 0,
    rejected_code: str | None = None,
    origin: dict[str, Any] | None = None,
) -> UploadFile:
    """A refused file: a failed record for the owner's history, no bytes.

    No event, unless the refusal came after every byte had arrived
    (``rejected_code``: a tus upload refused for its type at its last byte),
    which emits ``file.rejected`` like every other refusal after the bytes
    arrived (docs/webhooks.md). ``origin``: the upload request fields of a
    file an outsider sent.
    """
    with transaction.atomic(durable=True):
        file = UploadFile.objects.create(
            owner=owner,
            batch=batch,
            filename=filename,
            content_type=content_type,
            size=size,
            metadata=metadata,
            status=UploadFile.Status.FAILED,
            error_message=error_message,
            **(origin or {}),
        )
        if batch is not None:
            batch_record_file_ended(batch_id=batch.pk, stored=False)
        if rejected_code is not None:
            emit_event(
                aggregate_type="file",
                aggregate_id=file.id,
                event_type="file.rejected",
                payload=file_event_payload(
                    file,
                    with_download_url=False,
                    reason={"code": rejected_code, "message": error_message},
                ),
                idempotency_key=str(file.id),
            )
    logger.info("Upload of %r refused: %s (file %s)", filename, error_message, file.id)
    return file


def verification_enabled() -> bool:
    """Whether received files wait in ``scanning`` (a scanner or an upload hook is set)."""
    return scanning_enabled() or hook_enabled()


def file_record_stored(
    file: UploadFile,
    *,
    storage_key: str,
    size: int,
    sha256: str,
    ttl_hours: int | None = None,
) -> UploadFile:
    """The store step every upload path reaches once its bytes are in storage and hashed.

    Without a scanner (``CLAMD_URL``) or an upload hook (``UPLOAD_HOOK_URL``)
    the file is stored at once (``file_record_store``). With either, it is
    recorded ``scanning`` and verified by a task after this transaction
    commits (``portal.services.verification``): scanned, asked about
    (``upload.pre_store``), then stored, quarantined or rejected. Runs in the
    caller's transaction.

    Its ``expires_at`` (what TTL cleanup and expiry notices go by) is the
    uploader's keep time ``ttl_hours`` (checked by ``clean_ttl_hours``), else
    ``FILE_UPLOAD_TTL_HOURS``, counted from when it is stored.
    """
    ttl = timedelta(hours=ttl_hours if ttl_hours is not None else default_ttl_hours())
    file.storage_key = storage_key
    file.size = size
    file.sha256 = sha256
    if not verification_enabled():
        return file_record_store(file, ttl=ttl)
    if file.batch_id is not None:
        batch_check_accepts_received(batch_id=file.batch_id)
    now = timezone.now()
    file.status = UploadFile.Status.SCANNING
    file.verify_after = now
    # The keep time waits with the file, written as an expiry from its
    # creation (cleanup and notices skip ``scanning`` files); once verified
    # it counts from when the file is stored (``file_record_store``).
    file.expires_at = (file.created_at or now) + ttl
    file.save()
    file_id = file.id
    transaction.on_commit(lambda: request_file_verification(file_id))
    logger.info("File %s (%d bytes) received; verifying before it is stored", file.id, size)
    return file


def request_file_verification(file_id: Any) -> None:
    """Queue the verification of one received file (best effort: the sweep is the safety net)."""
    from celery import current_app

    try:
        current_app.send_task("portal.tasks.verify_file_task", args=[str(file_id)], queue="default")
    except Exception:
        logger.warning("Could not queue the verification of %s; the sweep will", file_id)


def file_record_store(
    file: UploadFile, *, verified: bool = False, ttl: timedelta | None = None
) -> UploadFile:
    """Mark ``file`` (bytes in storage, size and sha256 set) stored, count it in
    its batch, emit ``file.stored``. Runs in the caller's transaction.

    ``verified``: it comes from ``scanning``, so its batch accepted it earlier
    and may have been closed since (``batch_record_file_ended``), and its
    keep time is the one ``file_record_stored`` held on it. ``ttl``: the keep
    time, from now (default ``FILE_UPLOAD_TTL_HOURS``).
    """
    now = timezone.now()
    if ttl is None:
        ttl = timedelta(hours=default_ttl_hours())
        if verified and file.expires_at is not None and file.created_at is not None:
            # Whole hours, as every keep time is.
            held = (file.expires_at - file.created_at).total_seconds()
            ttl = timedelta(hours=max(MIN_TTL_HOURS, round(held / 3600)))
    file.status = UploadFile.Status.STORED
    file.error_message = ""
    file.verify_after = None
    file.stored_at = now
    file.expires_at = now + ttl
    file.save()
    if file.batch_id is not None:
        batch_record_file_ended(batch_id=file.batch_id, stored=True, received_earlier=verified)
    emit_event(
        aggregate_type="file",
        aggregate_id=file.id,
        event_type="file.stored",
        payload=file_event_payload(file),
        idempotency_key=str(file.id),
    )
    logger.info("Stored file %s (%d bytes, %s)", file.id, file.size, file.content_type)
    return file


def upload_file_record_stored(
    *,
    owner: Any,
    storage_key: str,
    filename: str,
    content_type: str,
    size: int,
    sha256: str,
    batch: UploadBatch | None = None,
    metadata: dict[str, Any] | None = None,
    ttl_hours: int | None = None,
    origin: dict[str, Any] | None = None,
) -> UploadFile:
    """Record bytes already in storage as a stored file and emit ``file.stored``
    (or as ``scanning`` first, see ``file_record_stored``).

    ``origin`` holds the upload request fields of a file an outsider sent
    (``upload_request_id``, ``sender_name``, ``sender_email``).

    One transaction (joins the caller's, if any): the record, the event and
    the batch counters commit together or not at all. The caller owns the
    object and removes it if this raises.
    """
    with transaction.atomic():
        file = UploadFile(
            owner=owner,
            batch=batch,
            filename=clean_filename(filename),
            content_type=content_type,
            metadata=clean_metadata(metadata),
            **(origin or {}),
        )
        return file_record_stored(
            file, storage_key=storage_key, size=size, sha256=sha256, ttl_hours=ttl_hours
        )


def upload_file_delete(*, file: UploadFile, actor: Any) -> None:
    """Delete a file for its owner or staff: the object first, then the record.

    In that order a crash leaves a record without bytes (which cleanup later
    removes), never bytes without a record. ``file.deleted`` is emitted for
    files that were stored (announced) and only by whoever deletes the row.
    """
    if file.owner_id != actor.pk and not actor.is_staff:
        raise PermissionDeniedError(
            "You may not delete this file.", details={"file_id": str(file.id)}
        )
    if file.storage_key:
        delete_object(file.storage_key)
    reason = "owner" if file.owner_id == actor.pk else "staff"
    with transaction.atomic(durable=True):
        deleted, _ = UploadFile.objects.filter(pk=file.pk).delete()
        if deleted and file.status == UploadFile.Status.STORED:
            emit_event(
                aggregate_type="file",
                aggregate_id=file.id,
                event_type="file.deleted",
                payload=file_event_payload(file, with_download_url=False, reason=reason),
                idempotency_key=str(file.id),
            )
    logger.info("Deleted file %s (%s)", file.id, reason)
