"""Webhook payloads of portal events (documented in docs/webhooks.md).

Payloads are versioned and only ever gain fields. They never carry secrets:
the download URL is signed and expiring, nothing else grants access.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal.models import UploadBatch, UploadFile
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
            "metadata": batch.metadata,
            "created_at": _iso(batch.created_at),
            "completed_at": _iso(batch.completed_at),
        },
        "uploader": uploader_payload(batch.owner),
    }
