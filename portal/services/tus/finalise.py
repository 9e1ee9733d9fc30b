"""The last byte is in: turn an upload's parts into a stored file, or a refused one.

Exactly what a simple upload does (type check, hash, file record,
``file.stored``), but from parts already in storage. The type is decided
from the leading bytes before anything is assembled, so a refused file
never gets a final object; it is recorded as failed and its parts deleted.
"""

from __future__ import annotations

import logging
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from common.exceptions import ApplicationError
from portal.models import UploadSession
from portal.services.content_types import upload_file_content_type
from portal.services.file_records import (
    clean_filename,
    upload_file_record_stored,
)
from portal.services.refusals import refusal_recorded
from portal.services.tus import sha256_state
from portal.services.tus.metadata import file_metadata, session_ttl_hours
from portal.services.tus.parts import part_store, upload_objects
from portal.services.upload_requests import submission_allowed_types, submission_file_fields
from portal.signals import file_stored
from portal.storage import generate_storage_key

logger = logging.getLogger(__name__)


def upload_session_is_fully_received(session: UploadSession) -> bool:
    """Every byte is stored but the upload was not finished (its finalisation broke off)."""
    return (
        session.status == UploadSession.Status.ACTIVE
        and session.length is not None
        and session.offset == session.length
    )


def upload_session_complete(session: UploadSession) -> None:
    """All bytes are here: a partial waits for its final upload, others finalise.

    Called with the session's lock held.
    """
    if session.concat == UploadSession.Concat.PARTIAL:
        part_store().seal(session)
        with transaction.atomic(durable=True):
            session.status = UploadSession.Status.COMPLETE
            session.completed_at = timezone.now()
            session.save(update_fields=["status", "completed_at", "updated_at"])
        return
    keys = upload_objects(session.parts.order_by("number").values_list("storage_key", flat=True))
    # The hash of every byte, saved with the offset as the PATCHes came in.
    finished = sha256_state.resume(session.sha256_state, offset=session.offset)
    known_sha256 = finished.hexdigest() if finished is not None else None
    upload_session_finalise(
        session, part_keys=keys, source_ids=[session.id], known_sha256=known_sha256
    )


def upload_session_finalise(
    session: UploadSession,
    *,
    part_keys: list[str],
    source_ids: list[UUID],
    known_sha256: str | None = None,
) -> None:
    """Assemble ``part_keys`` into the file ``session`` becomes; ``source_ids`` own the parts."""
    store = part_store()
    submission = session.submission
    try:
        content_type = upload_file_content_type(
            head=store.read_head(part_keys, session=session),
            filename=session.filename,
            declared=session.filetype,
            allowed_types=submission_allowed_types(submission),
        )
    except ApplicationError as exc:
        _fail(session, source_ids=source_ids, error=exc)
        raise

    assembled = store.assemble(
        part_keys, key=generate_storage_key(), known_sha256=known_sha256, session=session
    )
    if assembled.size != session.length:
        store.unassemble(part_keys, assembled)
        raise ApplicationError(
            "The stored parts do not add up to the upload length.",
            code="upload_incomplete",
            details={"expected": session.length, "found": assembled.size},
        )
    try:
        with transaction.atomic(durable=True):
            file = upload_file_record_stored(
                owner=session.owner,
                storage_key=assembled.key,
                filename=session.filename or clean_filename(""),
                content_type=content_type,
                size=assembled.size,
                sha256=assembled.sha256,
                batch=session.batch,
                metadata=file_metadata(session),
                ttl_hours=session_ttl_hours(session),
                origin=submission_file_fields(submission),
            )
            session.file = file
            session.status = UploadSession.Status.COMPLETE
            session.completed_at = timezone.now()
            session.offset = assembled.size
            session.save(update_fields=["file", "status", "completed_at", "offset", "updated_at"])
            _mark_consumed(session, source_ids)
    except ApplicationError as exc:
        # E.g. the batch ended meanwhile: this upload can no longer become a file.
        store.unassemble(part_keys, assembled)
        _fail(session, source_ids=source_ids, error=exc, record=False)
        raise
    except BaseException:
        # E.g. the database went away: the parts stay, and the upload is
        # finished by the next request that finds all its bytes there.
        store.unassemble(part_keys, assembled)
        raise
    file_stored.send(sender=None, kind="tus", size=assembled.size)
    logger.info(
        "Upload session %s finalised as file %s (%d bytes)", session.id, file.id, assembled.size
    )
    store.purge(source_ids)


def _mark_consumed(session: UploadSession, source_ids: list[UUID]) -> None:
    """Partial uploads a final upload was made of: their data is about to go."""
    if source_ids != [session.id]:
        UploadSession.objects.filter(id__in=source_ids).update(
            status=UploadSession.Status.CONCATENATED, updated_at=timezone.now()
        )


def _fail(
    session: UploadSession,
    *,
    source_ids: list[UUID],
    error: ApplicationError,
    record: bool = True,
) -> None:
    """End a refused upload: a failed file record (no bytes, no event), parts deleted."""
    file_id = None
    if record:
        refusal_recorded(
            error,
            owner=session.owner,
            filename=session.filename or clean_filename(""),
            batch=session.batch,
            metadata=file_metadata(session),
            content_type=session.filetype,
            size=session.length or 0,
            bytes_arrived=True,
            origin=submission_file_fields(session.submission),
        )
        file_id = error.details["file_id"]
    with transaction.atomic(durable=True):
        session.file_id = file_id
        session.status = UploadSession.Status.FAILED
        session.error_message = error.message
        session.save(update_fields=["file", "status", "error_message", "updated_at"])
        _mark_consumed(session, source_ids)
    part_store().purge(source_ids)
