"""Portal data: batches of files and the canonical file records.

Bytes live in storage under generated keys; these rows are the record of what
exists. The original filename is data for display and download headers only.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from common.models import BaseModel


class UploadBatch(BaseModel):
    """A group of files uploaded together; its status is derived from its files."""

    class Status(models.TextChoices):
        INIT = "init", "Initialised"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETE = "complete", "Complete"
        PARTIAL = "partial", "Partially failed"
        FAILED = "failed", "Failed"

    TERMINAL_STATUSES = (Status.COMPLETE, Status.PARTIAL, Status.FAILED)

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="upload_batches"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.INIT)
    # Null until known: either given at creation or fixed by closing the batch.
    expected_files = models.PositiveIntegerField(null=True, blank=True)
    files_stored = models.PositiveIntegerField(default=0)
    files_failed = models.PositiveIntegerField(default=0)
    # NULL (not "") means "no key", so the unique constraint ignores it.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    metadata = models.JSONField(default=dict, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="portal_batch_owner_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="portal_batch_owner_created"),
            models.Index(fields=["status"], name="portal_batch_status"),
        ]

    def __str__(self) -> str:
        return f"batch {self.id} ({self.status})"

    @property
    def files_ended(self) -> int:
        return self.files_stored + self.files_failed


class UploadFile(BaseModel):
    """The canonical record of one uploaded file."""

    class Status(models.TextChoices):
        UPLOADING = "uploading", "Uploading"
        STORED = "stored", "Stored"
        FAILED = "failed", "Failed"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="upload_files"
    )
    batch = models.ForeignKey(
        UploadBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="files"
    )
    # Generated (uploads/YYYY/MM/<uuid>), never derived from the filename.
    # Empty for a failed file, which keeps no bytes.
    storage_key = models.CharField(max_length=255, blank=True, default="")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255, blank=True, default="")
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADING)
    error_message = models.TextField(blank=True, default="")
    stored_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["storage_key"],
                condition=~Q(storage_key=""),
                name="portal_file_storage_key_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="portal_file_owner_created"),
            models.Index(fields=["status"], name="portal_file_status"),
            models.Index(fields=["batch", "status"], name="portal_file_batch_status"),
            # TTL cleanup and expiry notices scan by age (created_at is the
            # stored time for stored files); notices only look at stored ones.
            models.Index(
                fields=["created_at"],
                condition=Q(status="stored"),
                name="portal_file_stored_created",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.filename} ({self.status})"
