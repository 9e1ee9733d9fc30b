"""Resumable upload sessions: create, append (a PATCH), look up, terminate.

The offset only ever moves after the bytes are in storage, so a crash at any
point leaves a state the client can resume from.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from common.exceptions import (
    ApplicationError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ValidationError,
)
from common.services.connections import release_connection
from portal.models import UploadPart, UploadSession
from portal.services.hashing import BinaryStream
from portal.services.tus.errors import (
    ChecksumMismatchError,
    GoneError,
    LockedError,
    OffsetMismatchError,
)
from portal.services.tus.finalise import (
    upload_session_complete,
    upload_session_is_fully_received,
)
from portal.services.tus.locks import upload_session_lock
from portal.services.tus.metadata import session_fields
from portal.services.tus.parts import WrittenPart, part_store
from portal.services.tus.running_hashes import running_hashes

if TYPE_CHECKING:
    from accounts.models import User
    from portal.services.tus.values import Checksum, UploadMetadata

logger = logging.getLogger(__name__)


def max_upload_size() -> int:
    return int(settings.RESUMABLE_UPLOAD_MAX_SIZE)


def session_expiry(now: datetime | None = None) -> datetime:
    hours = int(settings.RESUMABLE_UPLOAD_EXPIRY_HOURS)
    return (now or timezone.now()) + timedelta(hours=hours)


def check_upload_length(length: int) -> None:
    limit = max_upload_size()
    if length > limit:
        raise PayloadTooLargeError(
            f"The upload is {length} bytes; the limit is {limit} bytes.",
            details={"length": length, "max_size": limit},
        )


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


def _waiting_for_bytes(session: UploadSession) -> bool:
    return session.status == UploadSession.Status.ACTIVE or (
        session.concat == UploadSession.Concat.PARTIAL
        and session.status == UploadSession.Status.COMPLETE
    )


def upload_session_is_gone(session: UploadSession, *, now: datetime | None = None) -> bool:
    if session.status in (UploadSession.Status.TERMINATED, UploadSession.Status.EXPIRED):
        return True
    return _waiting_for_bytes(session) and session.expires_at <= (now or timezone.now())


def upload_session_is_finished(session: UploadSession) -> bool:
    """Whether the session no longer waits for bytes (and so no longer expires)."""
    return not _waiting_for_bytes(session)


def ensure_alive(session: UploadSession) -> None:
    if upload_session_is_gone(session):
        raise GoneError(details={"upload_id": str(session.id)})


def upload_session_status(*, owner: User, upload_id: UUID | str) -> UploadSession:
    """The session a HEAD reports, finishing it first if all its bytes are already in.

    A database outage between recording the last PATCH and recording the
    file leaves every byte stored and the offset at the length; the client's
    retry asks HEAD where it is, learns it is done and stops. So the upload
    becomes its file here (or, at the latest, in the hourly sweep).
    """
    session = upload_session_get(owner=owner, upload_id=upload_id)
    if not upload_session_is_fully_received(session) or upload_session_is_gone(session):
        return session
    try:
        with upload_session_lock(session.id):
            session.refresh_from_db()
            if upload_session_is_fully_received(session):
                upload_session_complete(session)
    except LockedError:
        pass  # the request holding the lock is finishing it
    except ApplicationError:
        # Refused (its type, a closed batch): the session now says so.
        session.refresh_from_db()
    return session


# --- creation -------------------------------------------------------------------


def upload_session_create(
    *,
    owner: User,
    length: int | None,
    metadata: UploadMetadata,
    partial: bool = False,
    body: BinaryStream | None = None,
    body_length: int = 0,
    checksum: Checksum | None = None,
) -> UploadSession:
    """Start an upload of ``length`` bytes (``None``: the client defers the length).

    With a ``body`` (tus creation-with-upload) its ``body_length`` bytes are
    the first PATCH. If they fail their checksum the upload still exists at
    offset 0, and the client sends them again with PATCH.
    """
    if length is not None:
        check_upload_length(length)
    if body_length > (length if length is not None else max_upload_size()):
        raise PayloadTooLargeError(
            "The request body is longer than the upload.",
            details={"content_length": body_length, "length": length},
        )
    fields = session_fields(owner=owner, metadata=metadata)
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
            upload_session_complete(session)
    elif body is not None and body_length:
        try:
            session = upload_session_append(
                owner=owner,
                upload_id=session.id,
                offset=0,
                stream=body,
                content_length=body_length,
                checksum=checksum,
            )
        except ChecksumMismatchError:
            session.refresh_from_db()
    return session


# --- appending --------------------------------------------------------------------


def _new_length(
    session: UploadSession, *, upload_length: int | None, content_length: int
) -> int | None:
    """The length a PATCH's Upload-Length sets (deferred length), checked."""
    if upload_length is None:
        return None
    if session.length is not None:
        if upload_length != session.length:
            raise ValidationError(
                "Upload-Length cannot change once it is set.",
                details={"header": "Upload-Length", "length": session.length},
            )
        return None
    if upload_length < session.offset + content_length:
        raise ValidationError(
            "Upload-Length is smaller than the bytes already sent.",
            details={"header": "Upload-Length"},
        )
    check_upload_length(upload_length)
    return upload_length


def upload_session_append(
    *,
    owner: User,
    upload_id: UUID | str,
    offset: int,
    stream: BinaryStream,
    content_length: int,
    checksum: Checksum | None = None,
    upload_length: int | None = None,
) -> UploadSession:
    """Apply one PATCH: store its bytes at ``offset`` and move the offset on.

    Finalises the upload (file record + ``file.stored``) when the last byte
    arrives.
    """
    session = upload_session_get(owner=owner, upload_id=upload_id)
    if session.concat == UploadSession.Concat.FINAL:
        raise PermissionDeniedError(
            "A final (concatenated) upload cannot be patched.", code="final_upload"
        )
    with upload_session_lock(session.id) as lock:
        session.refresh_from_db()
        ensure_alive(session)
        if offset != session.offset:
            raise OffsetMismatchError(
                f"Upload-Offset is {offset} but the upload is at {session.offset}.",
                details={"offset": session.offset},
            )
        new_length = _new_length(
            session, upload_length=upload_length, content_length=content_length
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

        store = part_store()
        written = None
        running = None
        if content_length > 0:
            running = running_hashes.take(session.id, session.offset)
            # The body may take minutes: no database connection waits for it.
            release_connection()
            written = store.write(
                session=session,
                stream=stream,
                limit=content_length,
                checksum=checksum,
                running=running,
            )
        try:
            lock.check()
            _record_append(session, written=written, new_length=new_length, checksum=checksum)
        except Exception:
            if written is not None:
                store.discard(session_id=session.id, key=written.key, offset=offset)
            raise
        if running is not None:
            running_hashes.keep(session.id, session.offset, running)
        if session.length is not None and session.offset == session.length:
            upload_session_complete(session)
    return session


def _record_append(
    session: UploadSession,
    *,
    written: WrittenPart | None,
    new_length: int | None,
    checksum: Checksum | None,
) -> None:
    with transaction.atomic(durable=True):
        fields = ["expires_at", "updated_at"]
        if written is not None:
            number = (session.parts.aggregate(n=Max("number"))["n"] or 0) + 1
            UploadPart.objects.create(
                session=session,
                number=number,
                offset=session.offset,
                size=written.size,
                storage_key=written.key,
                checksum=checksum.header_value() if checksum else "",
            )
            session.offset += written.size
            fields.append("offset")
        if new_length is not None:
            session.length = new_length
            fields.append("length")
        session.expires_at = session_expiry()
        session.save(update_fields=fields)


# --- termination --------------------------------------------------------------------


def upload_session_terminate(*, owner: User, upload_id: UUID | str) -> None:
    """Stop an upload and delete its partial data (tus termination)."""
    session = upload_session_get(owner=owner, upload_id=upload_id)
    with upload_session_lock(session.id):
        session.refresh_from_db()
        ensure_alive(session)
        with transaction.atomic(durable=True):
            session.status = UploadSession.Status.TERMINATED
            session.save(update_fields=["status", "updated_at"])
        part_store().purge([session.id])
    logger.info("Upload session %s terminated", session.id)
