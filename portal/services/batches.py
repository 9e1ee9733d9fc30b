"""Batches: create, accept files, derive the status, announce completion.

Counters change only under the batch row's lock, inside the transaction that
records a file, so concurrent uploads into one batch never lose a count and
exactly one of them sees the batch end (and emits ``batch.completed``).
"""

from __future__ import annotations

import json
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from common.exceptions import ConflictError, NotFoundError, ValidationError
from common.services.emit import emit_event
from common.services.json_input import json_check
from common.services.text import clean_json, text_is_storable
from common.sizes import size_exact
from portal.models import UploadBatch, UploadFile
from portal.services.payloads import batch_event_payload

MAX_EXPECTED_FILES = 100_000
MAX_METADATA_BYTES = 16 * 1024


def clean_metadata(metadata: Any) -> dict[str, Any]:
    """Metadata is a small JSON object; anything else is refused before any write."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ValidationError("metadata must be a JSON object.", details={"field": "metadata"})
    # Before json.dumps, which recurses: nesting and NaN/Infinity named by path.
    json_check(metadata, field="metadata")
    try:
        encoded = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            "metadata must be JSON-serialisable.", details={"field": "metadata"}
        ) from exc
    if len(encoded.encode()) > MAX_METADATA_BYTES:
        raise ValidationError(
            f"metadata is larger than {size_exact(MAX_METADATA_BYTES)}.",
            details={"field": "metadata"},
        )
    cleaned: dict[str, Any] = clean_json(metadata, field="metadata")
    return cleaned


def batch_create(
    *,
    owner: Any,
    expected_files: int | None = None,
    idempotency_key: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> UploadBatch:
    """Create a batch, or return the owner's batch made with the same key.

    A client that retries a timed-out request with the same idempotency key
    gets the first batch back instead of a second, empty one.
    """
    if expected_files is not None:
        if isinstance(expected_files, bool) or not isinstance(expected_files, int):
            raise ValidationError(
                "expected_files must be an integer.", details={"field": "expected_files"}
            )
        if not 1 <= expected_files <= MAX_EXPECTED_FILES:
            raise ValidationError(
                f"expected_files must be between 1 and {MAX_EXPECTED_FILES}.",
                details={"field": "expected_files"},
            )
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str)
        or not 1 <= len(idempotency_key) <= 255
        or not text_is_storable(idempotency_key)
    ):
        raise ValidationError(
            "idempotency_key must be 1 to 255 characters, without NUL or unpaired surrogates.",
            details={"field": "idempotency_key"},
        )
    metadata = clean_metadata(metadata)

    if idempotency_key is not None:
        existing = UploadBatch.objects.filter(owner=owner, idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    try:
        with transaction.atomic(durable=True):
            return UploadBatch.objects.create(
                owner=owner,
                expected_files=expected_files,
                idempotency_key=idempotency_key,
                metadata=metadata,
            )
    except IntegrityError:
        # A concurrent request with the same key won the insert.
        return UploadBatch.objects.get(owner=owner, idempotency_key=idempotency_key)


def batch_check_open(*, batch: UploadBatch, owner: Any) -> None:
    """Refuse a file for someone else's batch or one that has ended (before any write)."""
    if batch.owner_id != owner.pk:
        raise NotFoundError("Batch not found.", details={"batch_id": str(batch.id)})
    batch.refresh_from_db()
    _ensure_accepts_files(batch)


def _ensure_accepts_files(batch: UploadBatch) -> None:
    if batch.status in UploadBatch.TERMINAL_STATUSES or batch.closed_at is not None:
        raise ConflictError(
            "This batch has ended and accepts no more files.",
            code="batch_closed",
            details={"batch_id": str(batch.id), "status": batch.status},
        )
    if batch.expected_files is not None and batch.files_ended >= batch.expected_files:
        raise ConflictError(
            "This batch already has all its expected files.",
            code="batch_full",
            details={"batch_id": str(batch.id), "expected_files": batch.expected_files},
        )


def _locked_batch(batch_id: Any) -> UploadBatch:
    """The batch row, locked ``FOR NO KEY UPDATE`` (and not its owner's row).

    The weaker lock is the point: a file or upload session inserted into the
    batch checks its foreign keys with ``FOR KEY SHARE`` on the batch and the
    owner, which ``FOR UPDATE`` would block. Two files of one batch ending at
    once (each inserted first, then counted here) deadlocked that way.
    """
    return (
        UploadBatch.objects.select_for_update(no_key=True, of=("self",))
        .select_related("owner")
        .get(pk=batch_id)
    )


def batch_check_accepts_received(*, batch_id: Any) -> None:
    """Refuse a received file for a batch that ended meanwhile (as counting it would).

    For a file that goes to verification (``scanning``) before it is counted;
    locks the batch row so a concurrent close sees the file.
    """
    _ensure_accepts_files(_locked_batch(batch_id))


def batch_record_file_ended(
    *, batch_id: Any, stored: bool, received_earlier: bool = False
) -> UploadBatch:
    """Count one stored or failed file; must run inside the recording transaction.

    Locks the batch row so the counter update, the status derivation and the
    one-time ``batch.completed`` event see a consistent batch.
    ``received_earlier``: a file whose bytes the batch accepted before it was
    closed, ending now that its verification did (closing counted it in
    ``expected_files``); a batch that already ended leaves it uncounted.
    """
    batch = _locked_batch(batch_id)
    if received_earlier:
        if batch.status in UploadBatch.TERMINAL_STATUSES:
            return batch
    else:
        _ensure_accepts_files(batch)
    fields = ["status", "updated_at"]
    if stored:
        batch.files_stored += 1
        fields.append("files_stored")
    else:
        batch.files_failed += 1
        fields.append("files_failed")
    if batch.status == UploadBatch.Status.INIT:
        batch.status = UploadBatch.Status.IN_PROGRESS
    fields += _complete_if_ended(batch)
    if received_earlier:
        fields += _end_closed_if_verified(batch)
    batch.save(update_fields=list(dict.fromkeys(fields)))
    return batch


def _end_closed_if_verified(batch: UploadBatch) -> list[str]:
    """A batch closed while some of its files were being verified ends when the
    last of them does, with the status closing would have given it then
    (``incomplete`` when announced files never came)."""
    if batch.status in UploadBatch.TERMINAL_STATUSES or batch.closed_at is None:
        return []
    if UploadFile.objects.filter(batch_id=batch.pk, status=UploadFile.Status.SCANNING).exists():
        return []
    batch.status = _closed_status(batch)
    batch.completed_at = timezone.now()
    _emit_completed(batch)
    return ["status", "completed_at"]


def _derived_status(batch: UploadBatch) -> str:
    if batch.files_failed == 0:
        return UploadBatch.Status.COMPLETE
    if batch.files_stored == 0:
        return UploadBatch.Status.FAILED
    return UploadBatch.Status.PARTIAL


def _complete_if_ended(batch: UploadBatch) -> list[str]:
    """End the batch when every expected file has ended; emit ``batch.completed`` once."""
    if batch.status in UploadBatch.TERMINAL_STATUSES:
        return []
    if batch.expected_files is None or batch.files_ended < batch.expected_files:
        return []
    batch.status = _derived_status(batch)
    batch.completed_at = timezone.now()
    _emit_completed(batch)
    return ["status", "completed_at"]


def _emit_completed(batch: UploadBatch) -> None:
    """``batch.completed``, once per batch (the outbox key is the batch id)."""
    emit_event(
        aggregate_type="batch",
        aggregate_id=batch.id,
        event_type="batch.completed",
        payload=batch_event_payload(batch),
        idempotency_key=str(batch.id),
    )


def _closed_status(batch: UploadBatch) -> str:
    """The status of a batch closed by hand, from what arrived against what was expected."""
    if batch.files_ended < (batch.expected_files or 0):
        return UploadBatch.Status.INCOMPLETE
    if batch.files_ended == 0:
        return UploadBatch.Status.EMPTY
    return _derived_status(batch)


def batch_close(*, batch: UploadBatch, actor: Any) -> UploadBatch:
    """Declare that no more files will come; the batch ends with what it has.

    For batches created without ``expected_files`` this is how they end, and
    the count that arrived becomes ``expected_files``. A batch that announced
    ``expected_files`` keeps it: closed before all of them came, it ends
    ``incomplete`` (``files_missing`` says how many never came), so a runner
    reading ``batch.completed`` can tell it from a complete one. A batch closed
    with no file at all (and none announced) ends ``empty``.
    Closing an ended batch changes nothing.
    """
    if batch.owner_id != actor.pk and not actor.is_staff:
        raise NotFoundError("Batch not found.", details={"batch_id": str(batch.id)})
    with transaction.atomic(durable=True):
        locked = _locked_batch(batch.pk)
        # Ended, or closed and waiting for files being verified.
        if locked.status in UploadBatch.TERMINAL_STATUSES or locked.closed_at is not None:
            return locked
        locked.closed_at = timezone.now()
        # Files received but still being verified (``scanning``) belong to
        # the batch: it ends when they are stored, quarantined or rejected
        # (``batch_record_file_ended`` with ``received_earlier``).
        held = UploadFile.objects.filter(
            batch_id=locked.pk, status=UploadFile.Status.SCANNING
        ).count()
        if locked.expected_files is None:
            locked.expected_files = locked.files_ended + held
        if held:
            locked.status = UploadBatch.Status.IN_PROGRESS
            locked.save(update_fields=["closed_at", "expected_files", "status", "updated_at"])
            return locked
        locked.status = _closed_status(locked)
        locked.completed_at = locked.closed_at
        _emit_completed(locked)
        locked.save(
            update_fields=["closed_at", "expected_files", "status", "completed_at", "updated_at"]
        )
    return locked
