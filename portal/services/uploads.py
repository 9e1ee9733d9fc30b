"""Simple uploads: stream into storage under a reserved record, then record them stored.

The record is reserved (``uploading``) before the first byte is written and
the bytes are written before any transaction opens (no storage I/O while
holding locks); the record, the ``file.stored`` event and the batch counters
are then written in one transaction (``file_records``). If that transaction
fails the object is removed again, so storage never keeps bytes that no
record points to.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.exceptions import ApplicationError, ConflictError, UnsupportedMediaTypeError
from portal.models import UploadBatch, UploadFile
from portal.services.batches import batch_check_open, batch_record_file_ended, clean_metadata
from portal.services.content_types import upload_file_content_type
from portal.services.file_records import clean_filename, clean_ttl_hours, file_record_stored
from portal.services.hashing import (
    BinaryStream,
    HashingReader,
    TooLargeError,
    as_file,
    read_head,
)
from portal.services.quotas import QuotaExceededError, admit_upload
from portal.services.refusals import refusal_recorded, too_large_error
from portal.services.stored_objects import delete_objects
from portal.services.upload_hooks import upload_hook_pre_create
from portal.signals import file_stored
from portal.storage import file_storage, generate_storage_key

logger = logging.getLogger(__name__)

# A streaming upload touches its ``uploading`` record this often, so the stale
# sweep (``UPLOAD_STALE_MINUTES``) never takes a slow but living upload.
HEARTBEAT_SECONDS = 60


@dataclass(frozen=True)
class Written:
    key: str
    size: int
    sha256: str


def _write_to_storage(
    *,
    key: str,
    stream: BinaryStream,
    head: bytes,
    content_type: str,
    heartbeat: Callable[[], None] | None = None,
) -> Written:
    """Stream ``head``, then the rest of ``stream``, to ``key`` while hashing.

    Raises ``TooLargeError`` past ``FILE_UPLOAD_MAX_SIZE``.
    """
    sha256 = hashlib.sha256()
    reader = HashingReader(
        stream,
        hashers=[sha256],
        head=head,
        max_size=int(settings.FILE_UPLOAD_MAX_SIZE),
        heartbeat=heartbeat,
        heartbeat_seconds=HEARTBEAT_SECONDS,
        content_type=content_type,
    )
    try:
        key = file_storage().save(key, as_file(reader))
    except BaseException:
        # A partial object (local file, or nothing on S3) must not stay behind.
        delete_objects([key])
        raise
    return Written(key=key, size=reader.size, sha256=sha256.hexdigest())


def upload_file_create(
    *,
    owner: Any,
    stream: BinaryStream,
    filename: str,
    content_type: str | None = None,
    batch: UploadBatch | None = None,
    metadata: dict[str, Any] | None = None,
    ttl_hours: int | None = None,
    declared_size: int | None = None,
) -> UploadFile:
    """Stream an upload into storage and record it as stored.

    Size and type are enforced while reading; a refused upload is recorded
    as failed (so the owner and the batch see it) and raises the matching
    ``ApplicationError`` after removing whatever bytes were written.
    ``ttl_hours`` is the uploader's keep time (``clean_ttl_hours``). The
    owner's quota is checked before a byte is read (against
    ``declared_size`` when the caller knows it) and again, exactly, with the
    size written.
    """
    filename = clean_filename(filename)
    metadata = clean_metadata(metadata)
    ttl_hours = clean_ttl_hours(ttl_hours)
    if batch is not None:
        batch_check_open(batch=batch, owner=owner)
    upload_file_admit(owner=owner, size=declared_size or 0)

    head = read_head(stream)
    try:
        detected_type = upload_file_content_type(
            head=head, filename=filename, declared=content_type
        )
    except UnsupportedMediaTypeError as exc:
        raise refusal_recorded(
            exc, owner=owner, filename=filename, batch=batch, metadata=metadata
        ) from None
    # The operator's hook may refuse before any record or byte exists.
    size = getattr(stream, "size", None)
    metadata = {
        **metadata,
        **upload_hook_pre_create(
            owner=owner,
            filename=filename,
            size=size if isinstance(size, int) else None,
            content_type=detected_type,
            metadata=metadata,
            batch=batch,
            kind="simple",
        ),
    }

    file = _reserve(
        owner=owner, batch=batch, filename=filename, content_type=detected_type, metadata=metadata
    )
    try:
        written = _write_to_storage(
            key=file.storage_key,
            stream=stream,
            head=head,
            content_type=detected_type,
            heartbeat=lambda: upload_file_touch(file),
        )
    except TooLargeError:
        raise _fail_reserved(file, too_large_error()) from None
    except Exception as exc:
        if not _still_reserved(file):
            # The stale sweep took it (and its object) while it was written.
            raise _abandoned(file) from exc
        _forget_reserved(file)
        raise
    except BaseException:
        _forget_reserved(file)
        raise

    return _finish_reserved(file, written, ttl_hours=ttl_hours)


def upload_file_admit(*, owner: Any, size: int) -> None:
    """The quota check of a simple upload about to start (413 ``quota_exceeded``).

    ``size`` is what the client declared (the request's length), or 0 when
    unknown; the exact size is checked again when the upload is recorded.
    """
    with transaction.atomic():
        admit_upload(owner=owner, size=size)


def _reserve(
    *,
    owner: Any,
    filename: str,
    content_type: str,
    batch: UploadBatch | None = None,
    metadata: dict[str, Any] | None = None,
) -> UploadFile:
    # The record exists before the first byte is written: a process killed
    # mid-write leaves an ``uploading`` row naming the object, which the stale
    # sweep deletes with it, never an object nobody knows about.
    with transaction.atomic(durable=True):
        return UploadFile.objects.create(
            owner=owner,
            batch=batch,
            storage_key=generate_storage_key(),
            filename=filename,
            content_type=content_type,
            metadata=metadata or {},
            status=UploadFile.Status.UPLOADING,
        )


def upload_file_reserve(
    *,
    owner: Any,
    head: bytes,
    filename: str,
    declared: str | None,
    body_length: int | None = None,
) -> UploadFile:
    """The ``uploading`` record a streamed upload writes under, once its head is known.

    Raises the refusal (bad name, refused type, the upload hook's refusal)
    before any record or byte exists. Batch and metadata are set when the
    upload is finished (``upload_file_create_streamed``): in a multipart body
    they may come after the file, so the pre-create hook sees neither, and as
    the size the request body's length (``body_length``), an upper bound.
    """
    filename = clean_filename(filename)
    content_type = upload_file_content_type(head=head, filename=filename, declared=declared)
    added = upload_hook_pre_create(
        owner=owner,
        filename=filename,
        size=body_length,
        content_type=content_type,
        metadata=None,
        kind="simple",
    )
    return _reserve(owner=owner, filename=filename, content_type=content_type, metadata=added)


def upload_file_write(*, key: str, stream: BinaryStream, content_type: str) -> Written:
    """Write a stream to ``key`` in storage, hashing it; no database access.

    A failed write leaves no object behind.
    """
    return _write_to_storage(key=key, stream=stream, head=b"", content_type=content_type)


def upload_file_discard(file: UploadFile) -> None:
    """Undo a reserved upload that will not be finished: its object, then its record."""
    delete_objects([file.storage_key])
    _forget_reserved(file)


def upload_file_create_streamed(
    *,
    owner: Any,
    upload: Any,
    batch: UploadBatch | None = None,
    metadata: dict[str, Any] | None = None,
    ttl_hours: int | None = None,
) -> UploadFile:
    """Finish a simple upload whose bytes already streamed into storage.

    ``upload`` is the ``StreamedUpload`` the request's upload handler made
    (``portal.services.streaming``). Same outcomes as ``upload_file_create``:
    a stored file with its event, or a failed record and the refusal; if
    this raises, the upload's object and reservation are removed when the
    request ends (``StreamedUpload.close``).
    """
    metadata = clean_metadata(metadata)
    ttl_hours = clean_ttl_hours(ttl_hours)
    if batch is not None:
        batch_check_open(batch=batch, owner=owner)
    refused = {"owner": owner, "batch": batch, "metadata": metadata}
    if upload.refusal is not None:
        exc = upload.refusal
        if isinstance(exc, UnsupportedMediaTypeError):
            raise refusal_recorded(exc, filename=clean_filename(upload.name), **refused)
        raise exc
    if upload.too_large:
        file = upload.record
        if file is None:  # over the limit within its first bytes
            raise refusal_recorded(
                too_large_error(), filename=clean_filename(upload.name), **refused
            )
        upload.claimed = True
        file.batch = batch
        file.metadata = metadata
        raise _fail_reserved(file, too_large_error())
    file = upload.record
    if upload.write_error is not None:
        if isinstance(upload.write_error, Exception) and not _still_reserved(file):
            raise _abandoned(file) from upload.write_error
        raise upload.write_error
    upload.claimed = True
    file.batch = batch
    # What the pre-create hook added (kept on the reservation) wins.
    file.metadata = {**metadata, **(file.metadata or {})}
    return _finish_reserved(file, upload.written, ttl_hours=ttl_hours)


def _finish_reserved(
    file: UploadFile, written: Written, *, ttl_hours: int | None = None
) -> UploadFile:
    """The bytes are in storage: mark the reserved record stored, or undo both.

    The quota is checked with the exact size under the owner's quota lock,
    in the transaction that makes the file stored: parallel simple uploads
    that all passed the check at their start cannot together overshoot it.
    A refusal leaves a failed record, like any other refused upload.
    """
    try:
        with transaction.atomic(durable=True):
            _claim_reserved(file)
            # Its ``uploading`` record is already counted as a file.
            admit_upload(owner=file.owner, size=written.size, files=0)
            stored = file_record_stored(
                file,
                storage_key=written.key,
                size=written.size,
                sha256=written.sha256,
                ttl_hours=ttl_hours,
            )
    except QuotaExceededError as exc:
        raise _fail_reserved(file, exc) from None
    except BaseException:
        delete_objects([written.key])
        _forget_reserved(file)
        raise
    # Counted once committed: a rolled-back file was never received.
    file_stored.send(sender=None, kind="simple", size=written.size)
    return stored


def _claim_reserved(file: UploadFile) -> None:
    """Lock the ``uploading`` record; fail if the stale sweep already removed it.

    Otherwise a stored record could point at an object the sweep deleted.
    """
    alive = (
        UploadFile.objects.select_for_update(no_key=True)
        .filter(pk=file.pk, status=UploadFile.Status.UPLOADING)
        .exists()
    )
    if not alive:
        raise _abandoned(file)


def _abandoned(file: UploadFile) -> ConflictError:
    return ConflictError(
        "The upload was idle for too long and has been removed; send it again.",
        code="upload_abandoned",
        details={"file_id": str(file.id)},
    )


def _still_reserved(file: UploadFile) -> bool:
    try:
        return UploadFile.objects.filter(pk=file.pk, status=UploadFile.Status.UPLOADING).exists()
    except Exception:
        return True  # cannot tell (database down): treat as the ordinary failure it is


def upload_file_touch(file: UploadFile) -> None:
    """Show the stale sweep that this upload is still streaming (best effort)."""
    try:
        UploadFile.objects.filter(pk=file.pk, status=UploadFile.Status.UPLOADING).update(
            updated_at=timezone.now()
        )
    except Exception:
        logger.warning("Could not touch the uploading record %s", file.id, exc_info=True)


def _fail_reserved(file: UploadFile, error: ApplicationError) -> ApplicationError:
    """A reserved upload refused while streaming: failed, no bytes, no event.

    The record already exists, so it becomes the refusal's failed record
    (``refusals.refusal_recorded`` makes one for uploads refused earlier).
    """
    delete_objects([file.storage_key])
    message = error.message
    with transaction.atomic(durable=True):
        file.status = UploadFile.Status.FAILED
        file.error_message = message
        file.storage_key = ""
        file.save(
            update_fields=[
                "status",
                "error_message",
                "storage_key",
                "batch",
                "metadata",
                "updated_at",
            ]
        )
        if file.batch_id is not None:
            batch_record_file_ended(batch_id=file.batch_id, stored=False)
    logger.info("Upload of %r refused: %s (file %s)", file.filename, message, file.id)
    error.details["file_id"] = str(file.id)
    return error


def _forget_reserved(file: UploadFile) -> None:
    """An upload that broke off (client gone, storage error): no record, as if never begun.

    Best effort: if the database is unreachable the ``uploading`` row stays and
    TTL cleanup removes it and its object later.
    """
    try:
        UploadFile.objects.filter(pk=file.pk, status=UploadFile.Status.UPLOADING).delete()
    except Exception:
        logger.exception("Could not remove the record of the broken upload %s", file.id)
