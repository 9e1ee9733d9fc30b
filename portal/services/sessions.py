"""Resumable upload sessions (the state behind the tus endpoint).

Why the bytes are stored the way they are: several web processes on several
machines may each receive one PATCH of the same upload, and S3 has no
"append". So on object storage every accepted PATCH body is streamed into its
own object (an ``UploadPart`` row records its key, offset and size); on local
disk, which all processes share anyway, the bodies are written at their
offset into one data file per upload. Either way the session's offset moves
only after the bytes are safely written. When the last byte arrives the parts
become the final object (streamed in order on S3, a rename on local disk),
hashed, the file record is created exactly like a simple upload, and the
parts are deleted. Concurrent requests on one upload are serialised with a
PostgreSQL advisory lock (``423 Locked`` when busy) that is held across the
storage write but outside any transaction. The byte handling itself is in
``portal.services.session_storage``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from common.exceptions import (
    ApplicationError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ValidationError,
)
from common.metrics.instruments import record_upload_stored
from portal.models import UploadBatch, UploadPart, UploadSession
from portal.services import session_storage

if TYPE_CHECKING:
    from accounts.models import User
    from portal.tus.headers import Checksum, UploadMetadata

logger = logging.getLogger(__name__)


class GoneError(ApplicationError):
    code = "upload_gone"
    status_code = 410
    default_message = "This upload was terminated or has expired; start a new one."


class LockedError(ApplicationError):
    code = "upload_locked"
    status_code = 423
    default_message = "Another request is writing to this upload; retry shortly."


class OffsetMismatchError(ConflictError):
    code = "offset_mismatch"
    default_message = "Upload-Offset does not match the upload's current offset."


class ConsumedPartialError(ConflictError):
    code = "partial_consumed"
    default_message = (
        "This partial upload was already used by a final upload and its data is gone; "
        "upload the part again."
    )


@dataclass(frozen=True)
class ExpireResult:
    expired: int
    remaining: int
    purged_parts: int


def max_upload_size() -> int:
    return int(settings.RESUMABLE_UPLOAD_MAX_SIZE)


def session_expiry(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(hours=int(settings.RESUMABLE_UPLOAD_EXPIRY_HOURS))


# --- locking ------------------------------------------------------------------


def _lock_key(session_id: UUID) -> int:
    """A signed 64-bit advisory-lock key private to upload sessions."""
    digest = hashlib.blake2b(f"portal.upload_session:{session_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


@contextmanager
def upload_session_lock(session_id: UUID) -> Iterator[None]:
    """Hold the session's advisory lock or raise ``LockedError`` at once.

    A session-level (not transaction-level) lock, so it can be held while
    bytes stream to storage with no transaction open; a crashed process's
    lock goes away with its connection.
    """
    key = _lock_key(session_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        (acquired,) = cursor.fetchone()
    if not acquired:
        raise LockedError(details={"upload_id": str(session_id)})
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        except DatabaseError:
            # The connection is gone, and the lock with it.
            logger.warning("Could not release the lock of upload session %s", session_id)


@contextmanager
def _locks(session_ids: list[UUID]) -> Iterator[None]:
    if not session_ids:
        yield
        return
    with upload_session_lock(session_ids[0]), _locks(session_ids[1:]):
        yield


# --- selectors ------------------------------------------------------------------


def upload_session_get(*, owner: User, upload_id: UUID | str) -> UploadSession:
    """The owner's session; another user's upload is indistinguishable from none."""
    try:
        upload_id = UUID(str(upload_id))
    except ValueError:
        raise NotFoundError("No such upload.") from None
    session = UploadSession.objects.filter(id=upload_id, owner=owner).first()
    if session is None:
        raise NotFoundError("No such upload.", details={"upload_id": str(upload_id)})
    return session


def upload_session_is_gone(session: UploadSession, *, now: datetime | None = None) -> bool:
    if session.status in (UploadSession.Status.TERMINATED, UploadSession.Status.EXPIRED):
        return True
    unfinished = session.status == UploadSession.Status.ACTIVE or (
        session.concat == UploadSession.Concat.PARTIAL
        and session.status == UploadSession.Status.COMPLETE
    )
    return unfinished and session.expires_at <= (now or timezone.now())


def upload_session_is_finished(session: UploadSession) -> bool:
    """Whether the session no longer waits for bytes (and so no longer expires)."""
    waiting = session.status == UploadSession.Status.ACTIVE or (
        session.concat == UploadSession.Concat.PARTIAL
        and session.status == UploadSession.Status.COMPLETE
    )
    return not waiting


def _ensure_alive(session: UploadSession) -> None:
    if upload_session_is_gone(session):
        raise GoneError(details={"upload_id": str(session.id)})


# --- creation -------------------------------------------------------------------


def _check_length(length: int) -> None:
    limit = max_upload_size()
    if length > limit:
        raise PayloadTooLargeError(
            f"The upload is {length} bytes; the limit is {limit} bytes.",
            details={"length": length, "max_size": limit},
        )


def _resolve_metadata(*, owner: User, metadata: UploadMetadata) -> dict[str, Any]:
    """The file-record fields carried by Upload-Metadata, checked before any write.

    ``filename``/``filetype`` are what tuspy and tus-js-client send; Uppy also
    sends ``name``/``type``, used when the former are absent.
    """
    from portal.services.batches import batch_check_open, clean_metadata
    from portal.services.uploads import clean_filename

    filename = metadata.text("filename") or metadata.text("name") or ""
    filetype = metadata.text("filetype") or metadata.text("type") or ""
    if len(filetype) > 255:
        raise ValidationError(
            "Upload-Metadata 'filetype' is too long.", details={"key": "filetype"}
        )
    clean_metadata(_extra_metadata(metadata.values))
    batch = None
    batch_id = metadata.text("batch")
    if batch_id:
        try:
            batch = UploadBatch.objects.filter(id=UUID(batch_id)).first()
        except ValueError:
            batch = None
        if batch is None:
            raise NotFoundError("Batch not found.", details={"batch_id": batch_id})
        batch_check_open(batch=batch, owner=owner)
    return {
        "filename": clean_filename(filename) if filename else "",
        "filetype": filetype,
        "batch": batch,
    }


def upload_session_create(
    *,
    owner: User,
    length: int | None,
    metadata: UploadMetadata,
    partial: bool = False,
) -> UploadSession:
    """Start an upload of ``length`` bytes (``None``: the client defers the length)."""
    if length is not None:
        _check_length(length)
    fields = _resolve_metadata(owner=owner, metadata=metadata)
    with transaction.atomic(durable=True):
        session = UploadSession.objects.create(
            owner=owner,
            length=length,
            concat=UploadSession.Concat.PARTIAL if partial else UploadSession.Concat.NONE,
            raw_metadata=metadata.raw,
            metadata=metadata.values,
            expires_at=session_expiry(),
            **fields,
        )
    logger.info("Upload session %s created (%s bytes)", session.id, length)
    if length == 0:
        # Nothing will ever be PATCHed: an empty file is complete at once.
        with upload_session_lock(session.id):
            _complete(session)
    return session


# --- appending --------------------------------------------------------------------


def upload_session_append(
    *,
    owner: User,
    upload_id: UUID | str,
    offset: int,
    stream: session_storage.BinaryStream,
    content_length: int,
    checksum: Checksum | None = None,
    upload_length: int | None = None,
) -> UploadSession:
    """Apply one PATCH: store its bytes at ``offset`` and move the offset on.

    Finalises the upload (file record + ``file.stored``) when the last byte
    arrives. The offset only ever moves after the bytes are in storage, so a
    crash at any point leaves a state the client can resume from.
    """
    session = upload_session_get(owner=owner, upload_id=upload_id)
    if session.concat == UploadSession.Concat.FINAL:
        raise PermissionDeniedError(
            "A final (concatenated) upload cannot be patched.", code="final_upload"
        )
    with upload_session_lock(session.id):
        session.refresh_from_db()
        _ensure_alive(session)
        if offset != session.offset:
            raise OffsetMismatchError(
                f"Upload-Offset is {offset} but the upload is at {session.offset}.",
                details={"offset": session.offset},
            )
        new_length = None
        if upload_length is not None:
            if session.length is None:
                if upload_length < session.offset + content_length:
                    raise ValidationError(
                        "Upload-Length is smaller than the bytes already sent.",
                        details={"header": "Upload-Length"},
                    )
                _check_length(upload_length)
                new_length = upload_length
            elif upload_length != session.length:
                raise ValidationError(
                    "Upload-Length cannot change once it is set.",
                    details={"header": "Upload-Length", "length": session.length},
                )
        length = new_length if new_length is not None else session.length
        limit = length if length is not None else max_upload_size()
        if session.offset + content_length > limit:
            raise PayloadTooLargeError(
                f"This PATCH would take the upload past {limit} bytes.",
                details={"offset": session.offset, "content_length": content_length},
            )
        if session.status != UploadSession.Status.ACTIVE:
            if content_length or new_length is not None:
                raise ConflictError("The upload is already complete.", code="upload_complete")
            return session

        written = None
        running = None
        if content_length > 0:
            running = session_storage.running_hashes.take(session.id, session.offset)
            written = session_storage.write_part(
                session=session,
                stream=stream,
                limit=content_length,
                checksum=checksum,
                running=running,
            )
        try:
            with transaction.atomic(durable=True):
                fields = ["expires_at", "updated_at"]
                if written is not None:
                    key, size = written
                    number = (session.parts.aggregate(n=Max("number"))["n"] or 0) + 1
                    UploadPart.objects.create(
                        session=session,
                        number=number,
                        offset=session.offset,
                        size=size,
                        storage_key=key,
                        checksum=checksum.header_value() if checksum else "",
                    )
                    session.offset += size
                    fields.append("offset")
                if new_length is not None:
                    session.length = new_length
                    fields.append("length")
                session.expires_at = session_expiry()
                session.save(update_fields=fields)
        except Exception:
            if written is not None:
                session_storage.discard_write(session=session, key=written[0], offset=offset)
            raise
        if running is not None:
            session_storage.running_hashes.keep(session.id, session.offset, running)
        if session.length is not None and session.offset == session.length:
            _complete(session)
    return session


def _complete(session: UploadSession) -> None:
    """All bytes are here: a partial waits for its final upload, others finalise."""
    if session.concat == UploadSession.Concat.PARTIAL:
        with transaction.atomic(durable=True):
            session.status = UploadSession.Status.COMPLETE
            session.completed_at = timezone.now()
            session.save(update_fields=["status", "completed_at", "updated_at"])
        return
    keys = session_storage.upload_objects(
        list(session.parts.order_by("number").values_list("storage_key", flat=True))
    )
    running = (
        session_storage.running_hashes.take(session.id, session.offset) if session.offset else None
    )
    known_sha256 = running.hexdigest() if running is not None else None
    _finalise(session, part_keys=keys, source_ids=[session.id], known_sha256=known_sha256)


def _finalise(
    session: UploadSession,
    *,
    part_keys: list[str],
    source_ids: list[UUID],
    known_sha256: str | None = None,
) -> None:
    """Turn the parts into a stored file exactly as a simple upload would.

    The type is decided from the leading bytes before anything is assembled,
    so a refused file never gets a final object; it is recorded as failed and
    its parts are deleted.
    """
    from portal.services import uploads
    from portal.storage import generate_storage_key

    try:
        content_type = uploads.upload_file_content_type(
            head=session_storage.read_head(part_keys),
            filename=session.filename,
            declared=session.filetype,
        )
    except ApplicationError as exc:
        _fail(session, source_ids=source_ids, error=exc)
        raise

    assembled = session_storage.assemble(
        part_keys, key=generate_storage_key(), known_sha256=known_sha256
    )
    if assembled.size != session.length:
        session_storage.delete_objects([assembled.key])
        raise ApplicationError(
            "The stored parts do not add up to the upload length.",
            code="upload_incomplete",
            details={"expected": session.length, "found": assembled.size},
        )
    final_key = assembled.key
    try:
        with transaction.atomic(durable=True):
            file = uploads.upload_file_record_stored(
                owner=session.owner,
                storage_key=final_key,
                filename=session.filename or uploads.clean_filename(""),
                content_type=content_type,
                size=assembled.size,
                sha256=assembled.sha256,
                batch=session.batch,
                metadata=_file_metadata(session),
            )
            session.file = file
            session.status = UploadSession.Status.COMPLETE
            session.completed_at = timezone.now()
            session.offset = assembled.size
            session.save(update_fields=["file", "status", "completed_at", "offset", "updated_at"])
            if source_ids != [session.id]:
                UploadSession.objects.filter(id__in=source_ids).update(
                    status=UploadSession.Status.CONCATENATED, updated_at=timezone.now()
                )
    except ApplicationError as exc:
        # E.g. the batch ended meanwhile: this upload can no longer become a file.
        session_storage.delete_objects([final_key])
        _fail(session, source_ids=source_ids, error=exc, record=False)
        raise
    except BaseException:
        session_storage.delete_objects([final_key])
        raise
    record_upload_stored(kind="tus", size=assembled.size)
    logger.info(
        "Upload session %s finalised as file %s (%d bytes)", session.id, file.id, assembled.size
    )
    session_storage.purge_parts(source_ids)


_RECORD_KEYS = frozenset({"filename", "name", "filetype", "type", "batch"})


def _extra_metadata(values: dict[str, str]) -> dict[str, str]:
    """Client metadata other than the keys that become record fields."""
    return {k: v for k, v in values.items() if k not in _RECORD_KEYS}


def _file_metadata(session: UploadSession) -> dict[str, Any]:
    return {**_extra_metadata(session.metadata), "upload_session": str(session.id)}


def _fail(
    session: UploadSession,
    *,
    source_ids: list[UUID],
    error: ApplicationError,
    record: bool = True,
) -> None:
    """End a refused upload: a failed file record (no bytes, no event), parts deleted."""
    from portal.services import uploads

    file = None
    if record:
        # The same failed record a refused simple upload gets.
        file = uploads.upload_file_record_failed(
            owner=session.owner,
            filename=session.filename or uploads.clean_filename(""),
            content_type=str(error.details.get("content_type", session.filetype))[:255],
            batch=session.batch,
            metadata=_file_metadata(session),
            error_message=error.message,
            size=session.length or 0,
        )
        error.details["file_id"] = str(file.id)
    with transaction.atomic(durable=True):
        session.file = file
        session.status = UploadSession.Status.FAILED
        session.error_message = error.message
        session.save(update_fields=["file", "status", "error_message", "updated_at"])
        if source_ids != [session.id]:
            UploadSession.objects.filter(id__in=source_ids).update(
                status=UploadSession.Status.CONCATENATED, updated_at=timezone.now()
            )
    session_storage.purge_parts(source_ids)


# --- concatenation ------------------------------------------------------------------


def upload_session_concatenate(
    *, owner: User, partial_ids: list[UUID], metadata: UploadMetadata
) -> UploadSession:
    """Create a final upload from complete partial uploads and finalise it at once.

    A partial upload may be named more than once (the tus spec allows it); its
    bytes then appear that often. Partial uploads are consumed: their data is
    deleted once the final upload is made, so naming one again is a 409.
    """
    found = {
        s.id: s
        for s in UploadSession.objects.filter(
            id__in=partial_ids, owner=owner, concat=UploadSession.Concat.PARTIAL
        )
    }
    missing = [str(pid) for pid in partial_ids if pid not in found]
    if missing:
        raise ValidationError(
            "Upload-Concat names uploads that are not your partial uploads.",
            details={"uploads": missing},
        )
    partials = [found[pid] for pid in partial_ids]
    for partial in partials:
        _ensure_alive(partial)
        _ensure_not_consumed(partial)
        if partial.status != UploadSession.Status.COMPLETE:
            raise ValidationError(
                "Every partial upload must be complete before the final upload is created.",
                code="partial_incomplete",
                details={"upload_id": str(partial.id), "offset": partial.offset},
            )
    length = sum(p.length or 0 for p in partials)
    _check_length(length)
    fields = _resolve_metadata(owner=owner, metadata=metadata)
    with _locks(sorted(set(partial_ids))):
        for partial in partials:
            partial.refresh_from_db()
            _ensure_not_consumed(partial)
            if partial.status != UploadSession.Status.COMPLETE:
                raise ConflictError(
                    "A partial upload changed while the final upload was created.",
                    details={"upload_id": str(partial.id)},
                )
        with transaction.atomic(durable=True):
            session = UploadSession.objects.create(
                owner=owner,
                length=length,
                concat=UploadSession.Concat.FINAL,
                partial_ids=[str(pid) for pid in partial_ids],
                raw_metadata=metadata.raw,
                metadata=metadata.values,
                expires_at=session_expiry(),
                **fields,
            )
        keys = list(
            UploadPart.objects.filter(session_id__in=partial_ids)
            .order_by("session_id", "number")
            .values_list("session_id", "storage_key")
        )
        by_session: dict[UUID, list[str]] = {}
        for sid, key in keys:
            by_session.setdefault(sid, []).append(key)
        ordered = [
            key
            for pid in partial_ids
            for key in session_storage.upload_objects(by_session.get(pid, []))
        ]
        with upload_session_lock(session.id):
            _finalise(session, part_keys=ordered, source_ids=[*partial_ids])
    session.refresh_from_db()
    return session


def _ensure_not_consumed(partial: UploadSession) -> None:
    if partial.status == UploadSession.Status.CONCATENATED:
        raise ConsumedPartialError(details={"upload_id": str(partial.id)})


# --- termination and expiry -----------------------------------------------------------


def upload_session_terminate(*, owner: User, upload_id: UUID | str) -> None:
    """Stop an upload and delete its partial data (tus termination)."""
    session = upload_session_get(owner=owner, upload_id=upload_id)
    with upload_session_lock(session.id):
        session.refresh_from_db()
        _ensure_alive(session)
        with transaction.atomic(durable=True):
            session.status = UploadSession.Status.TERMINATED
            session.save(update_fields=["status", "updated_at"])
        session_storage.purge_parts([session.id])
    logger.info("Upload session %s terminated", session.id)


def _expirable(now: datetime) -> Q:
    unfinished = Q(status=UploadSession.Status.ACTIVE) | Q(
        status=UploadSession.Status.COMPLETE, concat=UploadSession.Concat.PARTIAL
    )
    return unfinished & Q(expires_at__lte=now)


def upload_sessions_expire(*, limit: int = 500, now: datetime | None = None) -> ExpireResult:
    """Mark sessions past their expiry as expired and delete their partial data.

    Also deletes parts left behind by sessions that ended while their data
    was being removed (a crash between the two steps), so storage never
    keeps bytes nobody can reach. A session busy with a request is skipped;
    that request moves its expiry on.
    """
    now = now or timezone.now()
    due = list(
        UploadSession.objects.filter(_expirable(now))
        .order_by("expires_at")
        .values_list("id", flat=True)[:limit]
    )
    expired = 0
    purged = 0
    for session_id in due:
        try:
            with upload_session_lock(session_id):
                with transaction.atomic(durable=True):
                    changed = UploadSession.objects.filter(_expirable(now), id=session_id).update(
                        status=UploadSession.Status.EXPIRED, updated_at=timezone.now()
                    )
                if changed:
                    expired += 1
                    purged += session_storage.purge_parts([session_id])
        except LockedError:
            continue
    leftover = list(
        UploadPart.objects.filter(
            Q(session__status__in=UploadSession.DEAD_STATUSES)
            | Q(session__status=UploadSession.Status.COMPLETE, session__concat__in=["", "final"])
        )
        .values_list("session_id", flat=True)
        .distinct()[:limit]
    )
    if leftover:
        purged += session_storage.purge_parts(leftover)
    remaining = UploadSession.objects.filter(_expirable(timezone.now())).count()
    return ExpireResult(expired=expired, remaining=remaining, purged_parts=purged)
