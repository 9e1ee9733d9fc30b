"""What an upload's Upload-Metadata becomes: file-record fields and the file's metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from common.exceptions import NotFoundError, ValidationError
from portal.models import UploadBatch, UploadSession

if TYPE_CHECKING:
    from accounts.models import User
    from portal.services.tus.values import UploadMetadata

_RECORD_KEYS = frozenset({"filename", "name", "filetype", "type", "batch", "ttl_hours"})


def extra_metadata(values: dict[str, str]) -> dict[str, str]:
    """Client metadata other than the keys that become record fields."""
    return {k: v for k, v in values.items() if k not in _RECORD_KEYS}


def file_metadata(session: UploadSession) -> dict[str, Any]:
    """The metadata of the file the session becomes."""
    return {**extra_metadata(session.metadata), "upload_session": str(session.id)}


def session_ttl_hours(session: UploadSession) -> int | None:
    """The keep time the upload asked for (``ttl_hours``, checked at creation)."""
    from portal.services.file_records import clean_ttl_hours

    return clean_ttl_hours(session.metadata.get("ttl_hours"))


def session_fields(*, owner: User, metadata: UploadMetadata) -> dict[str, Any]:
    """The session's record fields carried by Upload-Metadata, checked before any write.

    ``filename``/``filetype`` are what tuspy and tus-js-client send; Uppy also
    sends ``name``/``type``, used when the former are absent. ``ttl_hours``
    (the file's keep time) stays in the session's metadata and is refused
    here, at creation, when it is out of range.
    """
    from portal.services.batches import batch_check_open, clean_metadata
    from portal.services.file_records import clean_filename, clean_ttl_hours

    clean_ttl_hours(metadata.text("ttl_hours"), field="ttl_hours")

    filename = metadata.text("filename") or metadata.text("name") or ""
    filetype = metadata.text("filetype") or metadata.text("type") or ""
    if len(filetype) > 255:
        raise ValidationError(
            "Upload-Metadata 'filetype' is too long.", details={"key": "filetype"}
        )
    clean_metadata(extra_metadata(metadata.values))
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
