"""Reads of portal data, scoped to what a user may see (owners: their own; staff: all)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from common.models import OutboxEvent
from portal.models import UploadBatch, UploadFile, UploadSession, UserQuota


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


@dataclass(frozen=True)
class FileCounts:
    stored: int
    uploading: int
    failed: int
    expiring: int
    bytes_stored: int
    deleted_last_day: int


def file_counts_for_owner(*, owner: Any, now: datetime | None = None) -> FileCounts:
    """The dashboard's numbers for one owner, in two index-backed queries.

    "Expiring" means stored files whose TTL ends within
    ``FILE_UPLOAD_EXPIRY_NOTIFY_HOURS``, the window ``file.expiring`` announces.
    Deleted files have no row any more; their ``file.deleted`` events (kept for
    ``OUTBOX_RETENTION_HOURS``, longer than a day) are counted instead.
    """
    now = now or timezone.now()
    soon = now + timedelta(hours=int(settings.FILE_UPLOAD_EXPIRY_NOTIFY_HOURS))
    stored = Q(status=UploadFile.Status.STORED)
    totals = UploadFile.objects.filter(owner=owner).aggregate(
        stored=Count("id", filter=stored),
        uploading=Count("id", filter=Q(status=UploadFile.Status.UPLOADING)),
        failed=Count("id", filter=Q(status=UploadFile.Status.FAILED)),
        expiring=Count("id", filter=stored & Q(expires_at__lte=soon)),
        bytes_stored=Coalesce(Sum("size", filter=stored), 0),
    )
    deleted = OutboxEvent.objects.filter(
        event_type="file.deleted",
        created_at__gte=now - timedelta(days=1),
        payload__uploader__id=str(owner.pk),
    ).count()
    return FileCounts(deleted_last_day=deleted, **totals)


def open_batches_for_owner(*, owner: Any) -> QuerySet[UploadBatch]:
    """Batches that still accept files, newest first."""
    return UploadBatch.objects.filter(
        owner=owner, status__in=[UploadBatch.Status.INIT, UploadBatch.Status.IN_PROGRESS]
    ).order_by("-created_at")


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

    Held: stored files, and simple uploads still streaming (``uploading``;
    their size is counted when they finish). Reserved: the declared
    ``Upload-Length`` of resumable uploads still receiving bytes (and of
    partial uploads waiting to be concatenated), so parallel creations see
    each other's reservations before a byte arrives. A partial upload's
    file is counted by its final upload. Failed files hold nothing; deleted
    and expired ones are gone, so their space is back at once.
    """
    now = now or timezone.now()
    held = UploadFile.objects.filter(
        owner_id=owner.pk,
        status__in=[UploadFile.Status.STORED, UploadFile.Status.UPLOADING],
    ).aggregate(files=Count("id"), bytes=Coalesce(Sum("size"), 0))
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
