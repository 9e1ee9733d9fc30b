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
        verbose_name_plural = "upload batches"
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
        # Every byte is in, the file waits for the virus scan and the
        # pre-store hook (portal/services/verification.py); not downloadable.
        SCANNING = "scanning", "Scanning"
        STORED = "stored", "Stored"
        FAILED = "failed", "Failed"
        # The scanner found malware: bytes kept for staff, never downloadable.
        QUARANTINED = "quarantined", "Quarantined"
        # Refused after its bytes arrived (pre-store hook, unscannable): bytes deleted.
        REJECTED = "rejected", "Rejected"

    class Scan(models.TextChoices):
        NONE = "", "Not scanned (no scanner configured)"
        CLEAN = "clean", "Clean"
        INFECTED = "infected", "Infected"
        # SCAN_FAIL_MODE=open let it through while the scanner was unreachable.
        UNSCANNED = "unscanned", "Not scanned (scanner unavailable)"

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
    # Verification (scan + pre-store hook) of a ``scanning`` file and its outcome.
    scan_result = models.CharField(max_length=16, choices=Scan.choices, blank=True, default="")
    scan_signature = models.CharField(max_length=255, blank=True, default="")
    scanned_at = models.DateTimeField(null=True, blank=True)
    verify_attempts = models.PositiveIntegerField(default=0)
    # A ``scanning`` file is (re)tried from this time; a claim moves it ahead
    # by a lease, so a verifier that died leaves it to the sweep.
    verify_after = models.DateTimeField(null=True, blank=True)

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
            # The verification sweep: files held in ``scanning``, by due time.
            models.Index(
                fields=["verify_after"],
                condition=Q(status="scanning"),
                name="portal_file_scanning_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.filename} ({self.status})"


class UploadSession(BaseModel):
    """The server side of one tus upload: how much has arrived and where it is.

    Bytes live in storage as one object per accepted PATCH on S3 (one data file
    on local disk), recorded as ``UploadPart`` rows, so any web process on any
    machine can take the next request; the final file is assembled from the
    parts when the last byte arrives.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Receiving"
        COMPLETE = "complete", "Complete"
        FAILED = "failed", "Failed"
        CONCATENATED = "concatenated", "Used in a final upload"
        TERMINATED = "terminated", "Terminated"
        EXPIRED = "expired", "Expired"

    class Concat(models.TextChoices):
        NONE = "", "Single upload"
        PARTIAL = "partial", "Partial upload"
        FINAL = "final", "Final upload"

    # Sessions in these states have no data worth keeping.
    DEAD_STATUSES = (Status.FAILED, Status.CONCATENATED, Status.TERMINATED, Status.EXPIRED)

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="upload_sessions"
    )
    batch = models.ForeignKey(
        UploadBatch,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="upload_sessions",
    )
    file = models.OneToOneField(
        UploadFile,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="upload_session",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    concat = models.CharField(max_length=8, choices=Concat.choices, blank=True, default="")
    # For a final upload: the partial sessions it was built from, in order.
    partial_ids = models.JSONField(default=list, blank=True)
    # Null while the client defers the length (creation-defer-length).
    length = models.BigIntegerField(null=True, blank=True)
    offset = models.BigIntegerField(default=0)
    # The sha256 of the first ``offset`` bytes, as OpenSSL's saved context
    # (portal/services/tus/sha256_state.py); written with the offset.
    sha256_state = models.BinaryField(null=True, blank=True, editable=False)
    # Upload-Metadata exactly as received (echoed on HEAD) and decoded.
    raw_metadata = models.TextField(blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    filename = models.CharField(max_length=255, blank=True, default="")
    filetype = models.CharField(max_length=255, blank=True, default="")
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    error_message = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "expires_at"], name="portal_session_status_expires"),
            models.Index(fields=["owner", "-created_at"], name="portal_session_owner_created"),
        ]

    def __str__(self) -> str:
        return f"upload session {self.id} ({self.status}, {self.offset}/{self.length})"


class UploadPart(BaseModel):
    """One accepted PATCH body: a storage object holding bytes [offset, offset + size)."""

    session = models.ForeignKey(UploadSession, on_delete=models.CASCADE, related_name="parts")
    number = models.PositiveIntegerField()
    offset = models.BigIntegerField()
    size = models.BigIntegerField()
    storage_key = models.CharField(max_length=255)
    # The verified Upload-Checksum of this part ("sha1 <base64>"), if one was sent.
    checksum = models.CharField(max_length=128, blank=True, default="")

    class Meta:
        ordering = ["session", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "number"], name="portal_part_session_number"
            ),
        ]

    def __str__(self) -> str:
        return f"part {self.number} of {self.session_id} ({self.size} bytes at {self.offset})"


class FileTotalsDelta(models.Model):
    """A change to the number and bytes of files in one status.

    Written only by the statement triggers on ``portal_uploadfile`` (migration
    0004): every statement that inserts, deletes or changes files appends one
    row per status it changed. ``/metrics`` sums them instead of aggregating
    every file (tens of ms at 100 000 files), and folds them into one row per
    status when they pile up (``portal.services.file_totals``). Appending
    never waits for another writer, as a shared counter row would.
    """

    id = models.BigAutoField(primary_key=True)
    status = models.CharField(max_length=16)
    files = models.BigIntegerField()
    bytes = models.BigIntegerField()

    class Meta:
        verbose_name_plural = "file totals deltas"

    def __str__(self) -> str:
        return f"{self.status}: {self.files:+d} files, {self.bytes:+d} bytes"
