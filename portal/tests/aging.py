"""Making files old in tests: created, stored and due to expire as if ``hours`` ago."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.utils import timezone

from portal.models import UploadFile
from portal.storage import file_storage, generate_storage_key


def age(files: list[UploadFile], *, hours: float, ttl_hours: float = 24) -> list[UploadFile]:
    """Make ``files`` as old as ``hours``, stored with a keep time of ``ttl_hours``."""
    created = timezone.now() - timedelta(hours=hours)
    UploadFile.objects.filter(pk__in=[f.pk for f in files]).update(
        created_at=created, stored_at=created, expires_at=created + timedelta(hours=ttl_hours)
    )
    return files


def expired_files_on_disk(owner, count: int) -> list[str]:
    """``count`` stored files past their expiry, with real objects (fast: one bulk insert)."""
    storage = file_storage()
    old = timezone.now() - timedelta(days=3)
    rows = []
    for i in range(count):
        key = generate_storage_key()
        path = Path(storage.path(key))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"%d" % i)
        rows.append(
            UploadFile(
                owner=owner,
                storage_key=key,
                filename=f"old-{i}.txt",
                content_type="text/plain",
                size=len(b"%d" % i),
                sha256="0" * 64,
                status=UploadFile.Status.STORED,
                stored_at=old,
                expires_at=old + timedelta(hours=1),
            )
        )
    UploadFile.objects.bulk_create(rows, batch_size=2000)
    return [r.storage_key for r in rows]
