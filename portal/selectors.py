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
    bytes_stored: int
    deleted_last_day: int


def file_counts_for_owner(*, owner: Any, now: datetime | None = None) -> FileCounts:
    """The dashboard's numbers for one owner (``None``: every owner, staff's
    portal-wide view), in two index-backed queries.

    "Expiring" means stored files whose TTL ends within
    ``FILE_UPLOAD_EXPIRY_NOTIFY_HOURS``, the window ``file.expiring`` announces.
    Deleted files have no row any more; their ``file.deleted`` events (kept for
    ``OUTBOX_RETENTION_HOURS``, longer than a day) are counted instead.
    """
    now = now or timezone.now()
    soon = now + timedelta(hours=int(settings.FILE_UPLOAD_EXPIRY_NOTIFY_HOURS))
    stored = Q(status=UploadFile.Status.STORED)
    files = UploadFile.objects.all() if owner is None else UploadFile.objects.filter(owner=owner)
    totals = files.aggregate(
        stored=Count("id", filter=stored),
        uploading=Count("id", filter=Q(status=UploadFile.Status.UPLOADING)),
        failed=Count("id", filter=Q(status=UploadFile.Status.FAILED)),
        expiring=Count("id", filter=stored & Q(expires_at__lte=soon)),
        bytes_stored=Coalesce(Sum("size", filter=stored), 0),
    )
    deleted_events = OutboxEvent.objects.filter(
        event_type="file.deleted", created_at__gte=now - timedelta(days=1)
    )
    if owner is not None:
        deleted_events = deleted_events.filter(payload__uploader__id=str(owner.pk))
    deleted = deleted_events.count()
    return FileCounts(deleted_last_day=deleted, **totals)


def open_batches_for_owner(*, owner: Any) -> QuerySet[UploadBatch]:
    """Batches that still accept files, newest first (``owner`` ``None``: everyone's)."""
    batches = UploadBatch.objects.filter(
        status__in=[UploadBatch.Status.INIT, UploadBatch.Status.IN_PROGRESS]
    )
    if owner is not None:
        batches = batches.filter(owner=owner)
    return batches.order_by("-created_at")
