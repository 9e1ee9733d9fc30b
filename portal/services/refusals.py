"""The one refusal path of every upload (buffered, streamed, tus).

A refused upload leaves a ``failed`` record for its owner's history (and its
batch's count), no bytes and no event; the error the client gets names that
record (``details.file_id``). Each upload path decides *when* it refuses;
what a refusal leaves behind and says is decided here.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from common.exceptions import ApplicationError, PayloadTooLargeError
from common.sizes import size_exact
from portal.models import UploadBatch
from portal.services.file_records import upload_file_record_failed


def too_large_error() -> PayloadTooLargeError:
    """The size refusal, naming the limit (``FILE_UPLOAD_MAX_SIZE``)."""
    limit = int(settings.FILE_UPLOAD_MAX_SIZE)
    return PayloadTooLargeError(
        f"The file is larger than the limit of {size_exact(limit)}.", details={"max_size": limit}
    )


def refusal_recorded(
    error: ApplicationError,
    *,
    owner: Any,
    filename: str,
    batch: UploadBatch | None,
    metadata: dict[str, Any],
    content_type: str = "",
    size: int = 0,
    bytes_arrived: bool = False,
    origin: dict[str, Any] | None = None,
) -> ApplicationError:
    """Record the refused file as failed and return ``error`` naming that record.

    The refusal's own ``content_type`` (what the content was found to be)
    wins over the one the client declared. ``bytes_arrived``: the refusal
    came after the whole upload was received (tus), so ``file.rejected``
    announces it.
    """
    failed = upload_file_record_failed(
        owner=owner,
        filename=filename,
        content_type=str(error.details.get("content_type", content_type))[:255],
        batch=batch,
        metadata=metadata,
        error_message=error.message,
        size=size,
        rejected_code=error.code if bytes_arrived else None,
        origin=origin,
    )
    error.details["file_id"] = str(failed.id)
    return error
