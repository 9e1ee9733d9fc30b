"""Making files old in tests: created, stored and due to expire as if ``hours`` ago."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from portal.models import UploadFile


def age(files: list[UploadFile], *, hours: float, ttl_hours: float = 24) -> list[UploadFile]:
    """Make ``files`` as old as ``hours``, stored with a keep time of ``ttl_hours``."""
    created = timezone.now() - timedelta(hours=hours)
    UploadFile.objects.filter(pk__in=[f.pk for f in files]).update(
        created_at=created, stored_at=created, expires_at=created + timedelta(hours=ttl_hours)
    )
    return files
