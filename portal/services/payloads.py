"""Webhook payloads of portal events (documented in docs/webhooks.md).

Payloads are versioned and only ever gain fields. They never carry secrets:
the download URL is signed and expiring, nothing else grants access.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal.models import UploadBatch, UploadFile, UploadRequest, UploadRequestSubmission
from portal.storage import file_download_url

SCHEMA_VERSION = 1


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def uploader_payload(user: Any) -> dict[str, Any]:
    return {"id": str(user.pk), "email": user.email}


def file_payload(file: UploadFile, *, with_download_url: bool = True) -> dict[str, Any]:
    """The ``file`` object shared by every file event."""
    stored = file.status == UploadFile.Status.STORED and bool(file.storage_key)
    return {
        "id": str(file.id),
        "batch_id": str(file.batch_id) if file.batch_id else None,
        "filename": file.filename,
        "content_type": file.content_type,
        "size": file.size,
        "sha256": file.sha256,
        "status": file.status,
        "metadata": file.metadata,
        "created_at": _iso(file.created_at),
        "stored_at": _iso(file.stored_at),
        "expires_at": _iso(file.expires_at),
        "download_url": file_download_url(file) if (with_download_url and stored) else None,
        # "clean", "unscanned" (SCAN_FAIL_MODE=open, scanner away), "infected",
        # or null when no scanner is configured.
        "scan_result": file.scan_result or None,
        # Set for files an outsider sent through an upload request.
        "upload_request_id": str(file.upload_request_id) if file.upload_request_id else None,
        "sender_name": file.sender_name,
        "sender_email": file.sender_email,
    }


def file_event_payload(
    file: UploadFile, *, with_download_url: bool = True, **extra: Any
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "file": file_payload(file, with_download_url=with_download_url),
        "uploader": uploader_payload(file.owner),
        **extra,
    }


def batch_event_payload(batch: UploadBatch) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "batch": {
            "id": str(batch.id),
            "status": batch.status,
            "expected_files": batch.expected_files,
            "files_stored": batch.files_stored,
            "files_failed": batch.files_failed,
            "files_deleted": batch.files_deleted,
            "files_ended": batch.files_ended,
            "files_missing": batch.files_missing,
            "metadata": batch.metadata,
            "created_at": _iso(batch.created_at),
            "closed_at": _iso(batch.closed_at),
            "completed_at": _iso(batch.completed_at),
        },
        "uploader": uploader_payload(batch.owner),
    }


def download_payload(download: Any) -> dict[str, Any]:
    """The ``download`` object of ``file.downloaded`` (a ``FileDownload``)."""
    return {
        "id": str(download.id),
        "via": download.via,
        "share_link_id": str(download.share_link_id) if download.share_link_id else None,
        "token_id": str(download.token_id) if download.token_id else None,
        "user_id": str(download.user_id) if download.user_id else None,
        "archive": download.archive,
        "at": _iso(download.created_at),
    }


def file_downloaded_payload(file: UploadFile, download: Any) -> dict[str, Any]:
    """``file.downloaded``: the file (without a fresh download URL) and how it was fetched."""
    return file_event_payload(file, with_download_url=False, download=download_payload(download))


# At most this many files are listed in one ``upload_request.submitted``.
SUBMITTED_FILES_LISTED = 1000


def upload_request_payload(upload_request: UploadRequest) -> dict[str, Any]:
    return {
        "id": str(upload_request.id),
        "title": upload_request.title,
        "expires_at": _iso(upload_request.expires_at),
        "max_files": upload_request.max_files,
        "max_bytes": upload_request.max_bytes,
        "allowed_types": upload_request.allowed_types,
    }


def upload_request_submitted_payload(
    submission: UploadRequestSubmission, files: list[UploadFile]
) -> dict[str, Any]:
    """``upload_request.submitted``: who sent what through which request."""
    stored = [f for f in files if f.status == UploadFile.Status.STORED]
    return {
        "schema_version": SCHEMA_VERSION,
        "upload_request": upload_request_payload(submission.request),
        "submission": {
            "id": str(submission.id),
            "batch_id": str(submission.batch_id) if submission.batch_id else None,
            "sender_name": submission.sender_name,
            "sender_email": submission.sender_email,
            "files_stored": len(stored),
            "files_failed": len(files) - len(stored),
            "bytes_stored": sum(f.size for f in stored),
            "created_at": _iso(submission.created_at),
            "submitted_at": _iso(submission.submitted_at),
        },
        "files": [file_payload(f) for f in stored[:SUBMITTED_FILES_LISTED]],
        "files_truncated": len(stored) > SUBMITTED_FILES_LISTED,
        "owner": uploader_payload(submission.request.owner),
    }
