"""Verification of a received file: virus scan, pre-store hook, then its outcome.

A file whose bytes are in (every upload path ends in
``file_records.file_record_stored``) waits in ``scanning`` while a Celery
task (``portal.tasks.verify_file_task``, queued when the upload's
transaction commits) does this off the upload's request, so a 1 GiB tus
upload's last PATCH is not held for its scan:

1. **Scan** (when ``CLAMD_URL`` is set): the bytes are read from storage and
   streamed to clamd. Infected: ``quarantined`` + ``file.quarantined`` (the
   signature), bytes kept for staff, never downloadable, never
   ``file.stored``. clamd unreachable: ``SCAN_FAIL_MODE`` — ``closed`` holds
   the file (retried with backoff), ``open`` goes on, marked ``unscanned``.
2. **Pre-store hook** (when ``UPLOAD_HOOK_URL`` is set): ``upload.pre_store``
   with the sha256, the scan's result and a signed download URL. 4xx: the
   file is ``rejected``, its bytes deleted, ``file.rejected`` with the
   reason. No answer: ``UPLOAD_HOOK_FAIL_MODE`` (``closed`` holds it).
3. **Stored**: ``file_records.file_record_store`` (``file.stored``).

Nothing is lost when a process dies: a verifier first *claims* the file by
moving its ``verify_after`` a lease ahead, and the sweep (beat entry
``verify-held-files``, every ``VERIFY_SWEEP_SECONDS``) queues every
``scanning`` file whose time has come: a held one after its backoff, a
claimed one whose verifier vanished after its lease.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.services.emit import emit_event
from portal.models import UploadFile
from portal.services.batches import batch_record_file_ended
from portal.services.clamd import (
    CHUNK_SIZE,
    ScannerUnavailable,
    ScanRefused,
    clamd_scan,
    scanning_enabled,
)
from portal.services.file_records import file_record_store, request_file_verification
from portal.services.payloads import file_event_payload, file_payload, uploader_payload
from portal.services.stored_objects import delete_objects
from portal.services.upload_hooks import fail_open as hook_fails_open
from portal.services.upload_hooks import hook_enabled, upload_hook_call
from portal.services.upload_requests import submission_finish_verified
from portal.storage import file_download_url, file_storage

logger = logging.getLogger(__name__)

# A claim holds a file this long; past it the sweep gives the file to another
# verifier (the first died). It is verify_file_task's hard time limit, so a
# living verifier always ends first: a 2 GiB file on a busy clamd may take
# minutes (the other tasks' limit, 300 s, is too short for it).
LEASE_SECONDS = 900
# The sweep's period (the beat entry); held files are tried again after a
# backoff of at most BACKOFF_MAX_SECONDS, so one whose scanner (or hook) is
# back is stored within BACKOFF_MAX_SECONDS + VERIFY_SWEEP_SECONDS (45 s).
VERIFY_SWEEP_SECONDS = 15
BACKOFF_MAX_SECONDS = 30
SWEEP_BATCH = 500


@dataclass(frozen=True)
class Outcome:
    status: str  # stored, quarantined, rejected, held, not_due
    reason: str = ""


def scan_fails_open() -> bool:
    return str(getattr(settings, "SCAN_FAIL_MODE", "closed")).strip().lower() == "open"


def backoff_seconds(attempts: int) -> int:
    """5, 10, 20, 30, 30, … seconds after the ``attempts``-th try."""
    return int(min(5 * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS))


def _claim(file_id: Any) -> UploadFile | None:
    """The file, if it is ``scanning`` and due; its due time moved a lease ahead."""
    now = timezone.now()
    with transaction.atomic(durable=True):
        file = (
            UploadFile.objects.select_for_update(skip_locked=True)
            .select_related("owner")
            .filter(pk=file_id, status=UploadFile.Status.SCANNING)
            .filter(verify_after__lte=now)
            .first()
        )
        if file is None:
            return None
        file.verify_after = now + timedelta(seconds=LEASE_SECONDS)
        file.verify_attempts += 1
        file.save(update_fields=["verify_after", "verify_attempts", "updated_at"])
    return file


def _chunks(key: str) -> Iterator[bytes]:
    with file_storage().open(key, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


ENDED = ("stored", "quarantined", "rejected")


def verify_file(file_id: Any) -> Outcome:
    """Scan, ask the hook, and store / quarantine / reject / hold one ``scanning`` file."""
    file = _claim(file_id)
    if file is None:
        return Outcome("not_due")
    outcome = _verify(file)
    if outcome.status in ENDED and file.batch_id is not None:
        # An outsider's submission that waited for its files is sent now.
        submission_finish_verified(batch_id=file.batch_id)
    return outcome


def _verify(file: UploadFile) -> Outcome:
    scan_result = ""
    if scanning_enabled():
        try:
            verdict = clamd_scan(_chunks(file.storage_key))
        except FileNotFoundError:
            return _reject(file, code="bytes_missing", message="The file's bytes were lost.")
        except ScannerUnavailable as exc:
            if not scan_fails_open():
                return _hold(file, f"Waiting for the virus scanner: {exc}")
            scan_result = UploadFile.Scan.UNSCANNED
        except ScanRefused as exc:
            if not scan_fails_open():
                return _reject(file, code="unscannable", message=f"Not scanned: {exc}.")
            scan_result = UploadFile.Scan.UNSCANNED
        else:
            if verdict.infected:
                return _quarantine(file, verdict.signature)
            scan_result = UploadFile.Scan.CLEAN
    added: dict[str, Any] = {}
    if hook_enabled():
        answer = upload_hook_call("upload.pre_store", pre_store_data(file, scan_result))
        if answer.refused:
            return _reject(file, code="upload_hook", message=answer.message)
        if answer.unavailable and not hook_fails_open():
            return _hold(file, f"Waiting for the upload hook: {answer.message}")
        added = answer.metadata
    return _store(file, scan_result=scan_result, added_metadata=added)


def pre_store_data(file: UploadFile, scan_result: str) -> dict[str, Any]:
    """``upload.pre_store``'s data: the file (with a signed URL that serves it
    while it is still ``scanning``), its uploader, the scan's result."""
    data = file_payload(file, with_download_url=False)
    data["download_url"] = file_download_url(file, pre_store=True)
    return {
        "file": data,
        "uploader": uploader_payload(file.owner),
        "scan": {"result": scan_result or None},
    }


def _locked(file: UploadFile) -> UploadFile | None:
    """The row again, locked, if it is still ``scanning`` (not deleted meanwhile)."""
    return (
        UploadFile.objects.select_for_update(no_key=True, of=("self",))
        .select_related("owner")
        .filter(pk=file.pk, status=UploadFile.Status.SCANNING)
        .first()
    )


def _store(file: UploadFile, *, scan_result: str, added_metadata: dict[str, Any]) -> Outcome:
    with transaction.atomic(durable=True):
        row = _locked(file)
        if row is None:
            return Outcome("not_due", "deleted meanwhile")
        if added_metadata:
            row.metadata = {**row.metadata, **added_metadata}
        row.scan_result = scan_result
        row.scanned_at = timezone.now() if scan_result else None
        file_record_store(row, verified=True)
    return Outcome("stored")


def _quarantine(file: UploadFile, signature: str) -> Outcome:
    reason = f"Malware found: {signature}"
    with transaction.atomic(durable=True):
        row = _locked(file)
        if row is None:
            return Outcome("not_due", "deleted meanwhile")
        row.status = UploadFile.Status.QUARANTINED
        row.scan_result = UploadFile.Scan.INFECTED
        row.scan_signature = signature
        row.scanned_at = timezone.now()
        row.error_message = reason
        row.verify_after = None
        row.save()
        if row.batch_id is not None:
            batch_record_file_ended(batch_id=row.batch_id, stored=False, received_earlier=True)
        emit_event(
            aggregate_type="file",
            aggregate_id=row.id,
            event_type="file.quarantined",
            payload=file_event_payload(row, signature=signature),
            idempotency_key=str(row.id),
        )
    logger.warning("File %s quarantined: %s", file.id, signature)
    return Outcome("quarantined", reason)


def _reject(file: UploadFile, *, code: str, message: str) -> Outcome:
    """Refused after its bytes arrived: the bytes go first, then the record says why.

    If the process dies between the two, the file is still ``scanning`` and
    its next verification finds no bytes and rejects it (``bytes_missing``).
    """
    delete_objects([file.storage_key])
    with transaction.atomic(durable=True):
        row = _locked(file)
        if row is None:
            return Outcome("not_due", "deleted meanwhile")
        emit_file_rejected(row, code=code, message=message)
    return Outcome("rejected", message)


def emit_file_rejected(file: UploadFile, *, code: str, message: str) -> None:
    """Record ``file`` (locked, bytes gone) as ``rejected`` and announce why.

    Runs in the caller's transaction.
    """
    file.status = UploadFile.Status.REJECTED
    file.storage_key = ""
    file.error_message = message
    file.verify_after = None
    file.save()
    if file.batch_id is not None:
        batch_record_file_ended(batch_id=file.batch_id, stored=False, received_earlier=True)
    emit_event(
        aggregate_type="file",
        aggregate_id=file.id,
        event_type="file.rejected",
        payload=file_event_payload(
            file, with_download_url=False, reason={"code": code, "message": message}
        ),
        idempotency_key=str(file.id),
    )
    logger.info("File %s rejected (%s): %s", file.id, code, message)


def _hold(file: UploadFile, reason: str) -> Outcome:
    """Keep the file ``scanning`` and try again after the backoff (the sweep queues it)."""
    due = timezone.now() + timedelta(seconds=backoff_seconds(file.verify_attempts))
    UploadFile.objects.filter(pk=file.pk, status=UploadFile.Status.SCANNING).update(
        verify_after=due, error_message=reason[:1000], updated_at=timezone.now()
    )
    logger.warning("File %s held (attempt %d): %s", file.id, file.verify_attempts, reason)
    return Outcome("held", reason)


def verify_held_files(*, limit: int = SWEEP_BATCH) -> int:
    """Queue the verification of every ``scanning`` file whose time has come."""
    due = list(
        UploadFile.objects.filter(
            status=UploadFile.Status.SCANNING, verify_after__lte=timezone.now()
        )
        .order_by("verify_after")
        .values_list("pk", flat=True)[:limit]
    )
    for file_id in due:
        request_file_verification(file_id)
    return len(due)
