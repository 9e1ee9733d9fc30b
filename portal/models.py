"""Portal data: batches of files and the canonical file records.

Bytes live in storage under generated keys; these rows are the record of what
exists. The original filename is data for display and download headers only.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from common.models import BaseModel


class UploadBatch(BaseModel):
    """A group of files uploaded together; its status is derived from its files."""

    class Status(models.TextChoices):
        INIT = "init", "Initialised"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETE = "complete", "Complete"
        PARTIAL = "partial", "Partially failed"
        FAILED = "failed", "Failed"
        # Closed by hand before every expected file had arrived.
        INCOMPLETE = "incomplete", "Closed with files missing"
        # Closed by hand with no file at all (and none announced).
        EMPTY = "empty", "Closed empty"

    TERMINAL_STATUSES = (
        Status.COMPLETE,
        Status.PARTIAL,
        Status.FAILED,
        Status.INCOMPLETE,
        Status.EMPTY,
    )

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="upload_batches"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.INIT)
    # Null until known: given at creation (and kept when the batch is closed
    # early), or, for a batch created without it, the count when it was closed.
    expected_files = models.PositiveIntegerField(null=True, blank=True)
    # Files of the batch now stored / failed. Deleting a file moves it from
    # these to ``files_deleted`` (a trigger on portal_uploadfile, migration
    # 0006), so the counts shown match the files listed and the files that
    # arrived (``files_ended``) stay counted.
    files_stored = models.PositiveIntegerField(default=0)
    files_failed = models.PositiveIntegerField(default=0)
    files_deleted = models.PositiveIntegerField(default=0, db_default=0)
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
        """Files that arrived and ended (stored or failed), deleted ones included."""
        return self.files_stored + self.files_failed + self.files_deleted

    @property
    def files_missing(self) -> int:
        """Expected files that never came: non-zero only for a batch closed early."""
        if self.closed_at is None or self.expected_files is None:
            return 0
        return max(0, self.expected_files - self.files_ended)


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

    # When the record was made, not when it was first saved: a tus upload's
    # record is saved once, already stored, and ``auto_now_add`` stamped it
    # after its ``stored_at`` (webhook payloads read stored before created).
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
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
    scan_result = models.CharField(
        max_length=16, choices=Scan.choices, blank=True, default="", db_default=""
    )
    scan_signature = models.CharField(max_length=255, blank=True, default="", db_default="")
    scanned_at = models.DateTimeField(null=True, blank=True)
    verify_attempts = models.PositiveIntegerField(default=0, db_default=0)
    # A ``scanning`` file is (re)tried from this time; a claim moves it ahead
    # by a lease, so a verifier that died leaves it to the sweep.
    verify_after = models.DateTimeField(null=True, blank=True)
    # Set for a file an outsider sent through an upload request (the owner is
    # the requester); the sender as they gave themselves, for display only.
    upload_request = models.ForeignKey(
        "UploadRequest",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="files",
    )
    sender_name = models.CharField(max_length=200, blank=True, default="", db_default="")
    sender_email = models.CharField(max_length=254, blank=True, default="", db_default="")

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
            # The dashboard's "expiring soon": one owner's stored files by
            # expiry, counted from the index alone (and only up to a cap).
            models.Index(
                fields=["owner", "expires_at"],
                condition=Q(status="stored"),
                name="portal_file_owner_expires",
            ),
            # TTL cleanup and expiry notices go by each file's own expiry
            # (its keep time); files without one (failed, abandoned) by age.
            models.Index(
                fields=["expires_at"],
                condition=Q(expires_at__isnull=False),
                name="portal_file_expires",
            ),
            models.Index(
                fields=["created_at"],
                condition=Q(expires_at__isnull=True),
                name="portal_file_no_expiry_created",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.filename} ({self.status})"


class UserQuota(BaseModel):
    """A staff-set override of one user's upload quotas.

    Without a row, or with a field left empty, the user has the defaults
    ``USER_QUOTA_BYTES`` / ``USER_QUOTA_FILES``; 0 means unlimited. Checked
    when an upload starts (``portal.services.quotas.admit_upload``).
    """

    owner = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="upload_quota"
    )
    max_bytes = models.BigIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Bytes of stored files and uploads in progress. "
        "Empty: the default (USER_QUOTA_BYTES); 0: unlimited.",
    )
    max_files = models.BigIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Stored files and uploads in progress. "
        "Empty: the default (USER_QUOTA_FILES); 0: unlimited.",
    )

    class Meta:
        verbose_name = "user quota"
        constraints = [
            models.CheckConstraint(
                condition=Q(max_bytes__gte=0) | Q(max_bytes__isnull=True),
                name="portal_quota_bytes_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(max_files__gte=0) | Q(max_files__isnull=True),
                name="portal_quota_files_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"quota of {self.owner_id}"


class UploadSession(BaseModel):
    """The server side of one tus upload: how much has arrived and where it is.

    Bytes live in storage as the parts of the final object's S3 multipart
    upload on S3 (one data file on local disk, one object per accepted PATCH on
    other object storage), recorded as ``UploadPart`` rows, so any web process
    on any machine can take the next request; the final file is assembled from
    the parts when the last byte arrives.
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
    # An outsider's upload through an upload request: the request credential
    # reaches only the sessions of its own submission.
    submission = models.ForeignKey(
        "UploadRequestSubmission",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="upload_sessions",
    )
    # On S3: the multipart upload the bytes go into as they arrive, the key of
    # the object it becomes, and the upload's first bytes for the type check
    # (so finalising reads nothing back). Empty on local disk.
    s3_upload_id = models.CharField(max_length=1024, blank=True, default="", db_default="")
    s3_key = models.CharField(max_length=255, blank=True, default="", db_default="")
    head = models.BinaryField(null=True, blank=True, editable=False)

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
    # On S3: the multipart upload's parts this PATCH uploaded, in order, as
    # [part number, ETag, size]; ``storage_key`` then names only the bytes
    # left over (fewer than S3's 5 MiB minimum part), if any.
    s3_parts = models.JSONField(null=True, blank=True)

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
    """A change to the number and bytes of one owner's files in one status.

    Written only by the statement triggers on ``portal_uploadfile`` (migrations
    0004 and 0006): every statement that inserts, deletes or changes files
    appends one row per owner and status it changed. ``/metrics`` sums them
    all, the dashboard and the files API one owner's, instead of aggregating
    every file (tens of ms at 100 000 files, ~170 ms at 1 000 000); they are
    folded into one row per owner and status when they pile up
    (``portal.services.file_totals``). Appending never waits for another
    writer, as a shared counter row would.
    """

    id = models.BigAutoField(primary_key=True)
    # No foreign key: a deleted user's files append their negative rows after
    # the user is gone, and the fold drops the zeros.
    owner_id = models.UUIDField()
    status = models.CharField(max_length=16)
    files = models.BigIntegerField()
    bytes = models.BigIntegerField()

    class Meta:
        verbose_name_plural = "file totals deltas"
        indexes = [models.Index(fields=["owner_id"], name="portal_filetotals_owner")]

    def __str__(self) -> str:
        return f"{self.status}: {self.files:+d} files, {self.bytes:+d} bytes"


class ShareLink(BaseModel):
    """A public link that hands one stored file, or a batch as a zip, to anyone holding it.

    Only a SHA-256 of the link's token is kept (the token has 256 bits, so a
    fast hash is enough and the lookup is one index probe); the plain link is
    shown once, when it is made. ``downloads`` is raised by one conditional
    UPDATE per download (``portal.services.share_links``), so parallel
    downloads can never pass ``max_downloads``.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="share_links"
    )
    file = models.ForeignKey(
        UploadFile, on_delete=models.CASCADE, null=True, blank=True, related_name="share_links"
    )
    batch = models.ForeignKey(
        UploadBatch, on_delete=models.CASCADE, null=True, blank=True, related_name="share_links"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    # Django's password hash, or "" for a link without a password.
    password_hash = models.CharField(max_length=128, blank=True, default="")
    max_downloads = models.PositiveIntegerField(null=True, blank=True)
    downloads = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_downloaded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(file__isnull=False, batch__isnull=True)
                | Q(file__isnull=True, batch__isnull=False),
                name="portal_sharelink_file_xor_batch",
            ),
            models.CheckConstraint(
                condition=Q(max_downloads__isnull=True)
                | Q(downloads__lte=models.F("max_downloads")),
                name="portal_sharelink_downloads_within_max",
            ),
        ]
        indexes = [
            models.Index(fields=["file", "-created_at"], name="portal_sharelink_file"),
            models.Index(fields=["batch", "-created_at"], name="portal_sharelink_batch"),
        ]

    def __str__(self) -> str:
        target = f"file {self.file_id}" if self.file_id else f"batch {self.batch_id}"
        return f"share link {self.id} ({target})"

    @property
    def has_password(self) -> bool:
        return bool(self.password_hash)

    @property
    def state(self) -> str:
        """``active``, or why not: ``revoked``, ``expired``, ``used_up``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        if self.max_downloads is not None and self.downloads >= self.max_downloads:
            return "used_up"
        return "active"

    @property
    def state_label(self) -> str:
        return {"used_up": "Used up"}.get(self.state, self.state.capitalize())


class FileDownload(BaseModel):
    """One completed download of a file: how it was fetched, by whom, when.

    Written with its ``file.downloaded`` event in one transaction; the file's
    page lists them (events are pruned after ``OUTBOX_RETENTION_HOURS``, these
    rows live as long as the file).
    """

    class Via(models.TextChoices):
        SHARE_LINK = "share_link", "Share link"
        TOKEN = "token", "API token"
        PORTAL = "portal", "Portal"
        SIGNED_LINK = "signed_link", "Signed link"

    file = models.ForeignKey(UploadFile, on_delete=models.CASCADE, related_name="downloads")
    via = models.CharField(max_length=16, choices=Via.choices)
    share_link = models.ForeignKey(
        ShareLink, on_delete=models.SET_NULL, null=True, blank=True, related_name="file_downloads"
    )
    # Who asked (portal, API), when known; a share link's visitor has no account.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="file_downloads",
    )
    token = models.ForeignKey(
        "accounts.ApiToken",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="file_downloads",
    )
    # Part of a zip (a batch's share link, the Files page's bulk download).
    archive = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["file", "-created_at"], name="portal_download_file_created"),
        ]

    def __str__(self) -> str:
        return f"download of {self.file_id} ({self.via})"


class UploadRequest(BaseModel):
    """A link that lets people without an account send files to its owner.

    Only a SHA-256 of the link's token is kept (like API tokens): the full
    link is shown once, when the request is made. Limits hold on the server
    at tus creation (``portal.services.upload_requests``).
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="upload_requests"
    )
    title = models.CharField(max_length=200)
    message = models.TextField(blank=True, default="")
    token_hash = models.CharField(max_length=64, unique=True)
    # Django's password hash; empty when the link needs no password.
    password_hash = models.CharField(max_length=255, blank=True, default="")
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    max_files = models.PositiveIntegerField(null=True, blank=True)
    max_bytes = models.BigIntegerField(null=True, blank=True)
    require_sender = models.BooleanField(default=False)
    # Narrows FILE_UPLOAD_ALLOWED_TYPES; empty: what the portal allows.
    allowed_types = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="portal_request_owner_created"),
        ]

    def __str__(self) -> str:
        return f"upload request {self.title!r} ({self.id})"


class UploadRequestSubmission(BaseModel):
    """One sender's visit to an upload request: their files land in one batch."""

    request = models.ForeignKey(UploadRequest, on_delete=models.CASCADE, related_name="submissions")
    batch = models.OneToOneField(
        UploadBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="submission"
    )
    sender_name = models.CharField(max_length=200, blank=True, default="")
    sender_email = models.CharField(max_length=254, blank=True, default="")
    # When the sender's uploads ended (upload_request.submitted was emitted).
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"submission {self.id} to {self.request_id}"
