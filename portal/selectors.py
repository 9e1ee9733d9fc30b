"""Reads of portal data, scoped to what a user may see (owners: their own; staff: all)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.services.tokens import token_hash
from common.models import OutboxEvent
from common.services.sql import fetch_all
from portal.models import (
    FileDownload,
    ShareLink,
    UploadBatch,
    UploadFile,
    UploadRequest,
    UploadRequestSubmission,
    UploadSession,
    UserQuota,
)


def files_for_user(user: Any) -> QuerySet[UploadFile]:
    qs = UploadFile.objects.select_related("owner", "batch")
    if getattr(user, "is_staff", False):
        return qs
    if not getattr(user, "is_authenticated", False):
        return qs.none()
    return qs.filter(owner=user)


def batches_for_user(user: Any) -> QuerySet[UploadBatch]:
    qs = UploadBatch.objects.select_related("owner")
    if getattr(user, "is_staff", False):
        return qs
    if not getattr(user, "is_authenticated", False):
        return qs.none()
    return qs.filter(owner=user)


# The dashboard counts files expiring soon up to this many ("10000+" beyond):
# past it the count would read every such file's index entry.
EXPIRING_COUNT_CAP = 10_000


@dataclass(frozen=True)
class FileTotals:
    """Files by status and stored bytes, exact, from the trigger-kept totals."""

    by_status: dict[str, int]
    stored_bytes: int
    delta_rows: int  # rows summed
    foldable_rows: int  # rows a fold would remove; many means it is time to fold
    # Bytes of the files being verified (``scanning``): held, not yet stored.
    scanning_bytes: int = 0

    @property
    def files(self) -> int:
        return sum(self.by_status.values())


_FILE_TOTALS = """
SELECT status, SUM(files), SUM(bytes), COUNT(*), COUNT(DISTINCT owner_id)
FROM portal_filetotalsdelta
WHERE %(everyone)s OR owner_id = %(owner)s::uuid
GROUP BY status
"""


def file_totals_for_owner(*, owner: Any = None) -> FileTotals:
    """One owner's files by status and stored bytes (everyone's without `owner`).

    Sums the running totals the triggers on ``portal_uploadfile`` keep
    (``FileTotalsDelta``): the cost is the rows written since the last fold,
    not the files kept (an aggregate over one owner's 1 000 000 files took
    ~170 ms).
    """
    by_status = {s.value: 0 for s in UploadFile.Status}
    stored_bytes = scanning_bytes = delta_rows = groups = 0
    # Every file list and the dashboard ask this: a prepared statement, not
    # an aggregate queryset compiled each time (~1 ms of a 10 ms API page).
    # One owner: one group per status; everyone: a fold keeps a row per owner.
    params = {"everyone": owner is None, "owner": owner.pk if owner is not None else None}
    sums = fetch_all(_FILE_TOTALS, params, prepare=True)
    for status, n, total_bytes, rows, owner_groups in sums:
        by_status[status] = int(n)
        delta_rows += rows
        groups += owner_groups
        if status == UploadFile.Status.STORED:
            stored_bytes = int(total_bytes)
        elif status == UploadFile.Status.SCANNING:
            scanning_bytes = int(total_bytes)
    return FileTotals(
        by_status=by_status,
        stored_bytes=stored_bytes,
        delta_rows=delta_rows,
        foldable_rows=delta_rows - groups,
        scanning_bytes=scanning_bytes,
    )


def files_in_view(*, user: Any, everyone: bool = False, owner: Any = None) -> QuerySet[UploadFile]:
    """The files a list page shows: one's own; staff may widen it.

    Staff see their own by default too (the pages stay "my files"); with
    ``everyone`` they see every user's files, with ``owner`` one user's.
    For anyone else both are ignored: they only ever see their own.
    """
    qs = files_for_user(user)
    if getattr(user, "is_staff", False):
        if owner is not None:
            return qs.filter(owner=owner)
        if everyone:
            return qs
    return qs.filter(owner=user)


@dataclass(frozen=True)
class FileCounts:
    stored: int
    uploading: int
    failed: int
    expiring: int
    expiring_capped: bool  # more than EXPIRING_COUNT_CAP: shown as "10000+"
    bytes_stored: int
    deleted_last_day: int
    foldable_rows: int  # of the owner's kept totals (fold past FOLD_OWNER_OVER)


def file_counts_for_owner(*, owner: Any, now: datetime | None = None) -> FileCounts:
    """The dashboard's numbers for one owner (``None``: every owner, staff's
    portal-wide view), none of them read from every file.

    Files by status and bytes come from the kept totals. "Expiring" means
    stored files whose TTL ends within ``FILE_UPLOAD_EXPIRY_NOTIFY_HOURS``,
    the window ``file.expiring`` announces, counted from the owner's expiry
    index up to ``EXPIRING_COUNT_CAP``. Deleted files have no row any more;
    their ``file.deleted`` events (kept for ``OUTBOX_RETENTION_HOURS``, longer
    than a day) are counted instead.
    """
    now = now or timezone.now()
    soon = now + timedelta(hours=int(settings.FILE_UPLOAD_EXPIRY_NOTIFY_HOURS))
    totals = file_totals_for_owner(owner=owner)
    files = UploadFile.objects.all() if owner is None else UploadFile.objects.filter(owner=owner)
    expiring = (
        files.filter(status=UploadFile.Status.STORED, expires_at__lte=soon)
        .order_by()
        .values("expires_at")[: EXPIRING_COUNT_CAP + 1]
        .count()
    )
    deleted_events = OutboxEvent.objects.filter(
        event_type="file.deleted", created_at__gte=now - timedelta(days=1)
    )
    if owner is not None:
        deleted_events = deleted_events.filter(payload__uploader__id=str(owner.pk))
    return FileCounts(
        stored=totals.by_status[UploadFile.Status.STORED],
        uploading=totals.by_status[UploadFile.Status.UPLOADING],
        failed=totals.by_status[UploadFile.Status.FAILED],
        expiring=min(expiring, EXPIRING_COUNT_CAP),
        expiring_capped=expiring > EXPIRING_COUNT_CAP,
        bytes_stored=totals.stored_bytes,
        deleted_last_day=deleted_events.count(),
        foldable_rows=totals.foldable_rows,
    )


def open_batches_for_owner(*, owner: Any) -> QuerySet[UploadBatch]:
    """Batches that still accept files, newest first (``owner`` ``None``: everyone's)."""
    batches = UploadBatch.objects.filter(
        status__in=[UploadBatch.Status.INIT, UploadBatch.Status.IN_PROGRESS]
    )
    if owner is not None:
        batches = batches.filter(owner=owner)
    return batches.order_by("-created_at")


@dataclass(frozen=True)
class HeldFiles:
    count: int
    oldest_age_seconds: float


def held_files(*, now: datetime | None = None) -> HeldFiles:
    """Files waiting in ``scanning`` (being verified, or held while the scanner
    or the upload hook is away): how many, and the age of the oldest (since its
    upload began)."""
    now = now or timezone.now()
    row = UploadFile.objects.filter(status=UploadFile.Status.SCANNING).aggregate(
        n=Count("id"), oldest=Min("created_at")
    )
    oldest = row["oldest"]
    age = (now - oldest).total_seconds() if oldest else 0.0
    return HeldFiles(count=row["n"], oldest_age_seconds=max(age, 0.0))


@dataclass(frozen=True)
class QuotaLimits:
    """A user's quotas; 0 = unlimited."""

    max_bytes: int
    max_files: int

    @property
    def unlimited(self) -> bool:
        return self.max_bytes == 0 and self.max_files == 0


@dataclass(frozen=True)
class QuotaUsage:
    """What counts against a user's quotas: stored files and uploads in progress."""

    bytes: int
    files: int


def quota_limits_for_owner(*, owner: Any) -> QuotaLimits:
    """The staff override (``UserQuota``) where set, else the settings' defaults."""
    override = UserQuota.objects.filter(owner_id=owner.pk).first()
    max_bytes = override.max_bytes if override is not None else None
    max_files = override.max_files if override is not None else None
    return QuotaLimits(
        max_bytes=int(settings.USER_QUOTA_BYTES if max_bytes is None else max_bytes),
        max_files=int(settings.USER_QUOTA_FILES if max_files is None else max_files),
    )


def quota_usage_for_owner(*, owner: Any, now: datetime | None = None) -> QuotaUsage:
    """Bytes and files held or reserved by ``owner``.

    Held: stored files, files being verified (``scanning``), and simple
    uploads still streaming (``uploading``;
    their size is counted when they finish). Reserved: the declared
    ``Upload-Length`` of resumable uploads still receiving bytes (and of
    partial uploads waiting to be concatenated), so parallel creations see
    each other's reservations before a byte arrives. A partial upload's
    file is counted by its final upload. Failed files hold nothing; deleted
    and expired ones are gone, so their space is back at once.
    """
    now = now or timezone.now()
    # From the kept totals, not an aggregate over the owner's files (which
    # reads every one of them: ~170 ms at 1 000 000). An uploading file's
    # size is not known yet, so stored bytes are the bytes held. Files being
    # verified (``scanning``) hold their bytes as stored ones do.
    totals = file_totals_for_owner(owner=owner)
    held = {
        "files": totals.by_status[UploadFile.Status.STORED]
        + totals.by_status[UploadFile.Status.SCANNING]
        + totals.by_status[UploadFile.Status.UPLOADING],
        "bytes": totals.stored_bytes + totals.scanning_bytes,
    }
    waiting = Q(status=UploadSession.Status.ACTIVE) | Q(
        concat=UploadSession.Concat.PARTIAL, status=UploadSession.Status.COMPLETE
    )
    reserved = UploadSession.objects.filter(
        waiting, owner_id=owner.pk, file__isnull=True, expires_at__gt=now
    ).aggregate(
        files=Count("id", filter=~Q(concat=UploadSession.Concat.PARTIAL)),
        bytes=Coalesce(Sum("length"), 0),
    )
    return QuotaUsage(
        bytes=int(held["bytes"]) + int(reserved["bytes"]),
        files=int(held["files"]) + int(reserved["files"]),
    )


@dataclass(frozen=True)
class QuotaStanding:
    """A user's quotas beside what they use, for the dashboard and the upload page."""

    limits: QuotaLimits
    usage: QuotaUsage

    @property
    def bytes_left(self) -> int | None:
        if not self.limits.max_bytes:
            return None
        return max(0, self.limits.max_bytes - self.usage.bytes)

    @property
    def files_left(self) -> int | None:
        if not self.limits.max_files:
            return None
        return max(0, self.limits.max_files - self.usage.files)

    @property
    def bytes_percent(self) -> int | None:
        if not self.limits.max_bytes:
            return None
        return min(100, self.usage.bytes * 100 // self.limits.max_bytes)

    @property
    def files_percent(self) -> int | None:
        if not self.limits.max_files:
            return None
        return min(100, self.usage.files * 100 // self.limits.max_files)


def quota_for_owner(*, owner: Any) -> QuotaStanding | None:
    """Where ``owner`` stands against their quotas; ``None`` when they have none
    (then their usage is not even counted)."""
    limits = quota_limits_for_owner(owner=owner)
    if limits.unlimited:
        return None
    return QuotaStanding(limits=limits, usage=quota_usage_for_owner(owner=owner))


def share_link_get_by_token(raw: str) -> ShareLink | None:
    """The link a visitor's token names (one index probe on its hash), whatever its state."""
    if not raw or len(raw) > 100:
        return None
    return (
        ShareLink.objects.select_related("file", "file__owner", "batch", "owner")
        .filter(token_hash=token_hash(raw))
        .first()
    )


def share_links_for_owner(*, owner: Any) -> QuerySet[ShareLink]:
    return ShareLink.objects.filter(owner=owner).order_by("-created_at", "-id")


def share_link_files(link: ShareLink) -> list[UploadFile]:
    """What a link hands out now: its file, or its batch's stored files (oldest first)."""
    stored = UploadFile.objects.filter(status=UploadFile.Status.STORED).exclude(storage_key="")
    if link.file_id:
        return list(stored.filter(pk=link.file_id).select_related("owner"))
    return list(
        stored.filter(batch_id=link.batch_id).select_related("owner").order_by("created_at", "id")
    )


def downloads_for_file(*, file: UploadFile, limit: int = 50) -> list[FileDownload]:
    """The file's latest completed downloads, newest first."""
    return list(
        FileDownload.objects.filter(file=file)
        .select_related("user", "token", "share_link")
        .order_by("-created_at")[:limit]
    )


def upload_requests_for_user(user: Any) -> QuerySet[UploadRequest]:
    """Upload requests the user may see (owners: their own; staff: all), with totals.

    ``files_received``/``bytes_received`` count the stored files sent through each.
    """
    stored = Q(files__status=UploadFile.Status.STORED)
    qs = UploadRequest.objects.annotate(
        files_received=Count("files", filter=stored),
        bytes_received=Coalesce(Sum("files__size", filter=stored), 0),
    )
    if getattr(user, "is_staff", False):
        return qs
    if not getattr(user, "is_authenticated", False):
        return qs.none()
    return qs.filter(owner=user)


def upload_request_submissions(
    upload_request: UploadRequest,
) -> QuerySet[UploadRequestSubmission]:
    """A request's submissions that sent something or ended, newest first, with their counts.

    A visit that never started an upload is not listed.
    """
    batch_files = "batch__files"
    stored = Q(**{f"{batch_files}__status": UploadFile.Status.STORED})
    failed = Q(**{f"{batch_files}__status": UploadFile.Status.FAILED})
    return (
        UploadRequestSubmission.objects.filter(request=upload_request)
        .annotate(
            files_stored=Count(batch_files, filter=stored),
            files_failed=Count(batch_files, filter=failed),
            bytes_stored=Coalesce(Sum(f"{batch_files}__size", filter=stored), 0),
        )
        .filter(Q(submitted_at__isnull=False) | Q(files_stored__gt=0) | Q(files_failed__gt=0))
        .order_by("-created_at")
    )
