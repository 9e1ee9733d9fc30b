"""Reads of portal data, scoped to what a user may see (owners: their own; staff: all)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

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
