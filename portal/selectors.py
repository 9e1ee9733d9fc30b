"""Reads of portal data, scoped to what a user may see (owners: their own; staff: all)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from common.models import OutboxEvent
from portal.models import UploadBatch, UploadFile


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
