"""One tus PATCH, top to bottom: lock, check, stream, record, finalise on the last byte.

The path a PATCH takes, and the only one:

1. take the upload's lock and read the session, in one round trip on the
   process's lock connection (``locks``; the request itself then holds no
   database connection while it streams);
2. check the request against the session;
3. stream the body into the part store, hashing it on a second thread as
   it arrives: the upload's sha256 so far is resumed from the state saved
   with the session (``sha256_state``), so whichever process receives the
   next PATCH continues it;
4. record the part, the new offset and the hash state in one statement,
   committed and followed by the lock's release in the same round trip
   (``HeldLock.release_with``);
5. on the last byte, record on the request's connection instead, keep the
   lock and ``finalise.upload_session_complete`` (which uses the finished
   hash instead of reading the file again).

The offset only ever moves after the bytes are in storage, so a crash at any
point leaves a state the client can resume from. A non-final PATCH costs
three round trips: the token, lock and session, record and release.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone
from uuid_utils.compat import uuid7

from common.exceptions import (
    ConflictError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ValidationError,
)
from common.services.connections import release_connection
from common.services.sql import fetch_all
from common.sizes import size_exact
from portal.models import UploadSession
from portal.services.hashing import BinaryStream
from portal.services.quotas import admit_upload
from portal.services.tus import sha256_state
from portal.services.tus.errors import ChecksumMismatchError, OffsetMismatchError
from portal.services.tus.finalise import upload_session_complete
from portal.services.tus.locks import HeldLock, Statement, upload_session_lock
from portal.services.tus.parts import PartStore, WrittenPart, part_store
from portal.services.tus.sessions import (
    check_upload_length,
    ensure_alive,
    max_upload_size,
    session_expiry,
    upload_session_create,
    upload_session_from_rows,
    upload_session_read,
)

if TYPE_CHECKING:
    from accounts.models import User
    from portal.models import UploadRequestSubmission
    from portal.services.tus.values import Checksum, UploadMetadata

logger = logging.getLogger(__name__)


def upload_session_append(
    *,
    owner: User,
    upload_id: UUID | str,
    offset: int,
    stream: BinaryStream,
    content_length: int,
    checksum: Checksum | None = None,
    upload_length: int | None = None,
    submission: UploadRequestSubmission | None = None,
) -> UploadSession:
    """Apply one PATCH: store its bytes at ``offset`` and move the offset on.

    With ``submission`` (an upload request credential) only that
    submission's uploads can be patched.
    """
    read = upload_session_read(owner=owner, upload_id=upload_id, submission=submission)
    # The lock connection sees committed rows only: inside a transaction
    # (a caller's, a test's) the session is read and recorded on the
    # caller's connection, as the lock connection could not see it.
    beside_lock = not connection.in_atomic_block
    # Else the lock and the session's read go to PostgreSQL together.
    with upload_session_lock(read.params["id"], read=read if beside_lock else None) as lock:
        rows = lock.rows if beside_lock else fetch_all(read.sql, read.params, prepare=True)
        session = upload_session_from_rows(rows, read)
        new_length = _check(
            session, offset=offset, content_length=content_length, upload_length=upload_length
        )
        if session.status != UploadSession.Status.ACTIVE:
            if content_length or new_length is not None:
                raise ConflictError("The upload is already complete.", code="upload_complete")
            return session
        if content_length > 0:
            _append_bytes(
                session,
                lock,
                stream,
                content_length,
                checksum,
                new_length,
                release_early=beside_lock,
            )
        elif new_length is not None:
            lock.check()
            session.length = new_length
            session.expires_at = session_expiry()
            session.save(update_fields=["length", "expires_at", "updated_at"])
        if session.length is not None and session.offset == session.length:
            upload_session_complete(session)
    return session


def upload_session_create_with_body(
    *,
    owner: User,
    length: int | None,
    metadata: UploadMetadata,
    partial: bool,
    body: BinaryStream,
    body_length: int,
    checksum: Checksum | None,
    submission: UploadRequestSubmission | None = None,
) -> UploadSession:
    """tus creation-with-upload: a creation, then its body as the first PATCH.

    If the bytes fail their checksum the upload still exists at offset 0,
    and the client sends them again with PATCH.
    """
    session = upload_session_create(
        owner=owner,
        length=length,
        metadata=metadata,
        partial=partial,
        body_length=body_length,
        submission=submission,
    )
    if not body_length or session.status != UploadSession.Status.ACTIVE:
        return session
    try:
        return upload_session_append(
            owner=owner,
            upload_id=session.id,
            offset=0,
            stream=body,
            content_length=body_length,
            checksum=checksum,
            submission=submission,
        )
    except ChecksumMismatchError:
        session.refresh_from_db()
        return session


def _check(
    session: UploadSession, *, offset: int, content_length: int, upload_length: int | None
) -> int | None:
    """Refuse a PATCH that does not fit the session; the length it sets, if any."""
    if session.concat == UploadSession.Concat.FINAL:
        raise PermissionDeniedError(
            "A final (concatenated) upload cannot be patched.", code="final_upload"
        )
    ensure_alive(session)
    if offset != session.offset:
        raise OffsetMismatchError(
            f"Upload-Offset is {offset} but the upload is at {session.offset}.",
            details={"offset": session.offset},
        )
    new_length = _new_length(session, upload_length=upload_length, content_length=content_length)
    length = new_length if new_length is not None else session.length
    limit = length if length is not None else max_upload_size()
    if session.offset + content_length > limit:
        raise PayloadTooLargeError(
            f"This PATCH would take the upload past {size_exact(limit)}.",
            details={"offset": session.offset, "content_length": content_length},
        )
    return new_length


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
    # A deferred length was reserved as 0 bytes; the quota sees it now.
    with transaction.atomic():
        admit_upload(owner=session.owner, size=upload_length, files=0)
    return upload_length


def _append_bytes(
    session: UploadSession,
    lock: HeldLock,
    stream: BinaryStream,
    content_length: int,
    checksum: Checksum | None,
    new_length: int | None,
    *,
    release_early: bool,
) -> None:
    """Stream the body into the part store and record it; ``session`` is updated.

    With ``release_early`` a PATCH that does not complete the upload records
    its bytes with the lock's release (one round trip).
    """
    store = part_store()
    hasher = sha256_state.resume(session.sha256_state, offset=session.offset)
    # The body may take minutes: no database connection waits for it.
    release_connection(content_length)
    written = store.write(
        session=session, stream=stream, limit=content_length, checksum=checksum, running=hasher
    )
    if written is None:  # nothing arrived
        if new_length is not None:
            session.length = new_length
            session.save(update_fields=["length", "updated_at"])
        return
    state = hasher.state() if hasher is not None else None
    length = new_length if new_length is not None else session.length
    record = _record_statement(
        session, written, checksum=checksum, new_length=new_length, state=state
    )
    try:
        if release_early and length != session.offset + written.size:
            # Recorded, committed and the lock released in one round trip.
            moved = lock.release_with(record)
        else:
            # The last bytes: the lock stays to finalise the upload.
            lock.check()
            moved = fetch_all(record.sql, record.params, prepare=True)
    except Exception:
        _discard(store, session, written, lock)
        raise
    if not moved:
        _discard(store, session, written, lock)
        raise ConflictError(
            "The upload moved on while this PATCH was written.",
            code="offset_moved",
            details={"upload_id": str(session.id)},
        )
    store.recorded(written)
    session.offset += written.size
    session.sha256_state = state
    if new_length is not None:
        session.length = new_length


def _discard(
    store: PartStore, session: UploadSession, written: WrittenPart, lock: HeldLock
) -> None:
    """Undo an unrecorded write, if this request still holds the lock.

    Once the lock is released another request may be writing: a local data
    file is then left for the next write, which cuts off what is past the
    recorded offset first, and an object store's unrecorded part is swept
    with its upload (``PartStore.purge``).
    """
    if not lock.released:
        store.discard(session_id=session.id, key=written.key, offset=session.offset)


# One round trip: the session's offset (and length, expiry, hash state) moves
# and the part is recorded, or, if the offset is no longer the one this
# request checked, neither happens.
#
# Committed without waiting for the WAL flush (``synchronous_commit`` off for
# this statement's transaction only; ``cfg`` must be referenced to run): on
# a small PATCH the flush was the largest single cost. Safe because a lost
# record only moves the upload back: if PostgreSQL crashes within a fraction
# of a second of the answer, the offset and hash state fall back together to
# an earlier PATCH, the bytes past it are cut off (or their part object is
# swept) on the next write, and the client resumes from HEAD's offset, as
# after any broken request. The data file is not fsynced either, so a
# recorded offset never outlived its bytes any better. What must not move
# back, the file record made on the last byte, is committed as before
# (``finalise``), and its flush carries this one's WAL with it.
_MOVED = """
WITH cfg AS (SELECT set_config('synchronous_commit', 'off', true)),
moved AS (
    UPDATE portal_uploadsession
    SET "offset" = %(new_offset)s, length = COALESCE(%(length)s, length),
        expires_at = %(expires_at)s, updated_at = %(now)s, sha256_state = %(state)s
    WHERE id = %(session)s AND "offset" = %(offset)s
    RETURNING id
)
"""
# A PATCH into an object that has its part row already (a local upload's
# data file after the first PATCH) only moves the session.
_MOVE = _MOVED + "SELECT 1 FROM moved, cfg"  # noqa: S608 - constants only
_RECORD = (
    _MOVED  # noqa: S608 - constants only
    + """
INSERT INTO portal_uploadpart
    (id, created_at, updated_at, session_id, number, "offset", size, storage_key, checksum,
     s3_parts)
SELECT %(part)s, %(now)s, %(now)s, moved.id,
    (SELECT COALESCE(MAX(number), 0) + 1 FROM portal_uploadpart WHERE session_id = %(session)s),
    %(offset)s, %(size)s, %(key)s, %(checksum)s, %(s3_parts)s::jsonb
FROM moved, cfg
RETURNING number
"""
)


def _record_statement(
    session: UploadSession,
    written: WrittenPart,
    *,
    checksum: Checksum | None,
    new_length: int | None,
    state: bytes | None,
) -> Statement:
    """The one statement that records ``written`` (and moves the offset past it)."""
    now = timezone.now()
    params: dict[str, Any] = {
        "session": session.id,
        "offset": session.offset,
        "new_offset": session.offset + written.size,
        "length": new_length,
        "expires_at": session_expiry(now),
        "now": now,
        "state": state,
    }
    if written.known:
        return Statement(_MOVE, params)
    params.update(
        part=uuid7(),
        size=written.size,
        key=written.key,
        checksum=checksum.header_value() if checksum else "",
        s3_parts=written.s3_parts_json(),
    )
    return Statement(_RECORD, params)
