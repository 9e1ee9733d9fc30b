"""Resumable upload sessions: look up, create, report (HEAD), terminate.

A PATCH is ``append``; the last byte's work is ``finalise``.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.exceptions import (
    ApplicationError,
    NotFoundError,
    PayloadTooLargeError,
    ValidationError,
)
from common.services.sql import fetch_all, model_columns
from common.sizes import size_exact
from portal.models import UploadRequestSubmission, UploadSession
from portal.services.quotas import admit_upload
from portal.services.tus.errors import (
    GoneError,
    LockedError,
    UploadFailedError,
)
from portal.services.tus.finalise import (
    upload_session_complete,
    upload_session_is_fully_received,
)
from portal.services.tus.locks import Statement, upload_session_lock
from portal.services.tus.metadata import extra_metadata, session_fields
from portal.services.tus.parts import part_store
from portal.services.upload_hooks import upload_hook_pre_create

if TYPE_CHECKING:
    from accounts.models import User
    from portal.services.tus.values import UploadMetadata

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
            f"The upload is {size_exact(length)}; the limit is {size_exact(limit)}.",
            details={"length": length, "max_size": limit},
        )


# --- selectors ------------------------------------------------------------------


def upload_session_get(
    *,
    owner: User,
    upload_id: UUID | str,
    submission: UploadRequestSubmission | None = None,
) -> UploadSession:
    """The owner's session; another user's upload is indistinguishable from none.

    With ``submission`` (an outsider's upload request credential) only that
    submission's sessions are found.
    """
    read = upload_session_read(owner=owner, upload_id=upload_id, submission=submission)
    return upload_session_from_rows(fetch_all(read.sql, read.params, prepare=True), read)


def upload_session_read(
    *,
    owner: User,
    upload_id: UUID | str,
    submission: UploadRequestSubmission | None = None,
) -> Statement:
    """The statement that reads the session ``upload_session_get`` returns.

    On its own, or handed to ``upload_session_lock`` so a PATCH takes its
    lock and reads its session in one round trip. Every PATCH and HEAD
    starts here: a statement written out once, not a queryset compiled each
    time (``common.services.sql.model_columns``).
    """
    try:
        upload_id = UUID(str(upload_id))
    except ValueError:
        raise NotFoundError("No such upload.") from None
    params = {
        "id": upload_id,
        "owner": owner.pk,
        "submission": submission.pk if submission is not None else None,
    }
    return Statement(_session_sql(), params)


def upload_session_from_rows(rows: list[tuple[Any, ...]], read: Statement) -> UploadSession:
    """The session ``read`` found, or ``NotFoundError``."""
    if not rows:
        raise NotFoundError("No such upload.", details={"upload_id": str(read.params["id"])})
    session: UploadSession = model_columns(UploadSession, "s").instance(rows[0])
    return session


@functools.cache
def _session_sql() -> str:
    return (
        f"SELECT {model_columns(UploadSession, 's').select} "  # noqa: S608
        f"FROM {UploadSession._meta.db_table} s "
        "WHERE s.id = %(id)s AND s.owner_id = %(owner)s "
        "AND (%(submission)s::uuid IS NULL OR s.submission_id = %(submission)s::uuid)"
    )


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


def ensure_not_failed(session: UploadSession) -> None:
    if session.status == UploadSession.Status.FAILED:
        raise UploadFailedError(
            f"This upload was refused: {session.error_message}",
            details={"upload_id": str(session.id)},
        )


def ensure_alive(session: UploadSession) -> None:
    """Refuse a session that takes no more requests: gone, or refused at its last step."""
    ensure_not_failed(session)
    if upload_session_is_gone(session):
        raise GoneError(details={"upload_id": str(session.id)})


def upload_session_status(
    *,
    owner: User,
    upload_id: UUID | str,
    submission: UploadRequestSubmission | None = None,
) -> UploadSession:
    """The session a HEAD reports, finishing it first if all its bytes are already in.

    A database outage between recording the last PATCH and recording the
    file leaves every byte stored and the offset at the length; the client's
    retry asks HEAD where it is, learns it is done and stops. So the upload
    becomes its file here (or, at the latest, in the hourly sweep).
    """
    session = upload_session_get(owner=owner, upload_id=upload_id, submission=submission)
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
    body_length: int = 0,
    submission: UploadRequestSubmission | None = None,
) -> UploadSession:
    """Start an upload of ``length`` bytes (``None``: the client defers the length).

    A creation that carries bytes (``body_length``) is checked here and its
    bytes are appended by ``append.upload_session_create_with_body``. An
    outsider's upload (``submission``) goes into the submission's batch and
    is admitted against the request's limits in the creating transaction.
    """
    from portal.services.upload_requests import upload_request_admit

    if submission is not None and (length is None or partial):
        raise ValidationError(
            "An upload through an upload request needs Upload-Length and no concatenation.",
            details={"header": "Upload-Length"},
        )
    if length is not None:
        check_upload_length(length)
    if body_length > (length if length is not None else max_upload_size()):
        raise PayloadTooLargeError(
            "The request body is longer than the upload.",
            details={"content_length": body_length, "length": length},
        )
    fields = session_fields(owner=owner, metadata=metadata)
    if submission is not None:
        fields["batch"] = submission.batch
    # The operator's hook may refuse before the session (or any byte) exists;
    # the metadata it adds goes to the file the session becomes. The quota and
    # an upload request's limits are checked with the session's creation below.
    added = upload_hook_pre_create(
        owner=owner,
        filename=fields["filename"],
        size=length,
        content_type=fields["filetype"],
        metadata=extra_metadata(metadata.values),
        batch=fields["batch"],
        file_request=submission.request if submission is not None else None,
        kind="tus_partial" if partial else "tus",
    )
    with transaction.atomic(durable=True):
        # Counted from here on: the session reserves its whole length (a
        # partial upload's file is counted by its final upload).
        admit_upload(owner=owner, size=length or 0, files=0 if partial else 1)
        if submission is not None and length is not None:
            upload_request_admit(
                submission=submission,
                length=length,
                filename=fields["filename"],
                filetype=fields["filetype"],
            )
        session = UploadSession.objects.create(
            submission=submission,
            owner=owner,
            length=length,
            concat=UploadSession.Concat.PARTIAL if partial else UploadSession.Concat.NONE,
            raw_metadata=metadata.raw,
            metadata={**metadata.values, **added},
            expires_at=session_expiry(),
            **fields,
        )
    logger.info("Upload session %s created (%s bytes)", session.id, length)
    if length == 0:
        # Nothing will ever be PATCHed: an empty file is complete at once.
        with upload_session_lock(session.id):
            upload_session_complete(session)
    return session


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
