"""tus concatenation: a final upload made of complete partial uploads."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from django.db import transaction

from common.exceptions import ConflictError, ValidationError
from portal.models import UploadPart, UploadSession
from portal.services.quotas import admit_upload
from portal.services.tus.errors import ConsumedPartialError
from portal.services.tus.finalise import upload_session_finalise
from portal.services.tus.locks import upload_session_lock, upload_session_locks
from portal.services.tus.metadata import session_fields
from portal.services.tus.parts import upload_objects
from portal.services.tus.sessions import (
    check_upload_length,
    ensure_alive,
    ensure_not_failed,
    session_expiry,
)

if TYPE_CHECKING:
    from accounts.models import User
    from portal.services.tus.values import UploadMetadata


def upload_session_concatenate(
    *, owner: User, partial_ids: list[UUID], metadata: UploadMetadata
) -> UploadSession:
    """Create a final upload from complete partial uploads and finalise it at once.

    A partial upload may be named more than once (the tus spec allows it); its
    bytes then appear that often. Partial uploads are consumed: their data is
    deleted once the final upload is made, so naming one in another final
    upload is a 409.

    Asking again with the same partial uploads in the same order answers with
    the final upload they already became: a client whose answer was lost (a
    reloaded page, a dropped connection) asks again, and must get the upload
    it made, not a refusal it cannot get past, and never a second file.
    """
    partials = _partials(owner=owner, partial_ids=partial_ids)
    earlier = _earlier_final(owner=owner, partial_ids=partial_ids)
    if earlier is not None and earlier.status != UploadSession.Status.ACTIVE:
        return _answer(earlier)
    if earlier is None:
        _ensure_usable(partials)
    length = sum(p.length or 0 for p in partials)
    check_upload_length(length)
    fields = session_fields(owner=owner, metadata=metadata)
    with upload_session_locks(sorted(set(partial_ids))):
        # Under the partials' locks nobody else can make their final upload,
        # so what is found now decides: answer it, finish it, or make it.
        earlier = _earlier_final(owner=owner, partial_ids=partial_ids)
        if earlier is not None and earlier.status != UploadSession.Status.ACTIVE:
            return _answer(earlier)
        if earlier is None:
            for partial in partials:
                partial.refresh_from_db()
            _ensure_usable(partials, changed=True)
            with transaction.atomic(durable=True):
                # The partials reserved the bytes; the file is counted here.
                admit_upload(owner=owner, size=0, files=1)
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
        else:
            # Made before, but its finalisation broke off (a database outage):
            # the partials still hold the bytes, so finish that one.
            session = earlier
        with upload_session_lock(session.id):
            upload_session_finalise(
                session, part_keys=_part_keys(partial_ids), source_ids=[*partial_ids]
            )
    session.refresh_from_db()
    return session


def _earlier_final(*, owner: User, partial_ids: list[UUID]) -> UploadSession | None:
    """The owner's final upload of exactly these partials in this order, if one was made."""
    return (
        UploadSession.objects.filter(
            owner=owner,
            concat=UploadSession.Concat.FINAL,
            partial_ids=[str(pid) for pid in partial_ids],
        )
        .exclude(status__in=[UploadSession.Status.TERMINATED, UploadSession.Status.EXPIRED])
        .order_by("-created_at")
        .first()
    )


def _answer(final: UploadSession) -> UploadSession:
    """The earlier final upload as the answer: it, or the refusal it ended in."""
    ensure_not_failed(final)
    return final


def _ensure_usable(partials: list[UploadSession], *, changed: bool = False) -> None:
    """Each partial is alive, complete and not yet used by another final upload."""
    for partial in partials:
        ensure_alive(partial)
        _ensure_not_consumed(partial)
        if partial.status == UploadSession.Status.COMPLETE:
            continue
        if changed:
            raise ConflictError(
                "A partial upload changed while the final upload was created.",
                details={"upload_id": str(partial.id)},
            )
        raise ValidationError(
            "Every partial upload must be complete before the final upload is created.",
            code="partial_incomplete",
            details={"upload_id": str(partial.id), "offset": partial.offset},
        )


def _partials(*, owner: User, partial_ids: list[UUID]) -> list[UploadSession]:
    """The named sessions in the order named, each the owner's partial upload."""
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
    return [found[pid] for pid in partial_ids]


def _part_keys(partial_ids: list[UUID]) -> list[str]:
    """The objects of the partial uploads, in the order named (repeats included)."""
    rows = (
        UploadPart.objects.filter(session_id__in=partial_ids)
        .order_by("session_id", "number")
        .values_list("session_id", "storage_key")
    )
    by_session: dict[UUID, list[str]] = {}
    for session_id, key in rows:
        by_session.setdefault(session_id, []).append(key)
    return [key for pid in partial_ids for key in upload_objects(by_session.get(pid, []))]


def _ensure_not_consumed(partial: UploadSession) -> None:
    if partial.status == UploadSession.Status.CONCATENATED:
        raise ConsumedPartialError(details={"upload_id": str(partial.id)})
