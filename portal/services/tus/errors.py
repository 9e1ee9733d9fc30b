"""The refusals particular to resumable uploads, with the statuses tus gives them."""

from __future__ import annotations

from common.exceptions import ApplicationError, ConflictError


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


class ChecksumMismatchError(ApplicationError):
    code = "checksum_mismatch"
    status_code = 460
    default_message = "The checksum of the received bytes does not match Upload-Checksum."


class UploadFailedError(GoneError):
    """An upload refused at its last step, asked about again (HEAD, PATCH, a
    repeated final concatenation): gone, with the reason, so a client starts a
    new upload instead of taking "every byte is here" for "stored"."""

    code = "upload_failed"
    default_message = "This upload was refused and its data is gone; start a new one."
