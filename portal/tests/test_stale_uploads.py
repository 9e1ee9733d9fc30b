"""Abandoned ``uploading`` records go, with their bytes, after ``UPLOAD_STALE_MINUTES``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from common.exceptions import ConflictError
from portal.models import UploadFile, UploadSession
from portal.services import uploads
from portal.services.cleanup import cleanup_stale_uploading_files
from portal.services.uploads import upload_file_create
from portal.storage import file_storage
from portal.tasks import expire_stale_upload_sessions_task
from portal.tests.streams import BytesStream

CHUNK = 64 * 1024


class Broken(Exception):
    pass


class HookedStream:
    """``chunks`` reads of 64 KiB; ``hook(i)`` runs before read number ``i``."""

    def __init__(self, chunks: int, hook: Callable[[int], None] | None = None):
        self.chunks = chunks
        self.hook = hook
        self.reads = 0

    def read(self, n: int = -1) -> bytes:
        self.reads += 1
        if self.hook is not None:
            self.hook(self.reads)
        if self.reads > self.chunks:
            return b""
        return b"\x00\x01" * (CHUNK // 2)


def abandoned_upload(owner, monkeypatch) -> UploadFile:
    """An upload that broke off and could not clean up after itself (its process
    died, or the database was unreachable): record and partial object stay."""

    def breaks(i: int) -> None:
        if i == 4:
            raise Broken

    before = set(UploadFile.objects.values_list("pk", flat=True))
    monkeypatch.setattr(uploads, "_forget_reserved", lambda file: None)
    monkeypatch.setattr(uploads, "delete_objects", lambda keys: set())
    with pytest.raises(Broken):
        upload_file_create(owner=owner, stream=HookedStream(10, breaks), filename="big.bin")
    monkeypatch.undo()
    return UploadFile.objects.exclude(pk__in=before).get(status=UploadFile.Status.UPLOADING)


def files_on_disk(settings) -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def age(file: UploadFile, minutes: float) -> None:
    UploadFile.objects.filter(pk=file.pk).update(
        updated_at=timezone.now() - timedelta(minutes=minutes)
    )


@pytest.mark.django_db
def test_hourly_task_removes_abandoned_uploads_and_their_bytes(user, settings, monkeypatch):
    settings.UPLOAD_STALE_MINUTES = 60
    stale = abandoned_upload(user, monkeypatch)
    fresh = abandoned_upload(user, monkeypatch)
    stored = upload_file_create(owner=user, stream=BytesStream(b"kept"), filename="kept.txt")
    age(stale, 61)
    age(fresh, 59)
    age(stored, 600)
    assert file_storage().exists(stale.storage_key)

    result = expire_stale_upload_sessions_task.apply().get()

    assert result == {"expired": 0, "remaining": 0, "stale_files_deleted": 1}
    assert set(UploadFile.objects.values_list("pk", flat=True)) == {fresh.pk, stored.pk}
    assert files_on_disk(settings) == {fresh.storage_key, stored.storage_key}
    # A second run finds nothing more.
    assert expire_stale_upload_sessions_task.apply().get()["stale_files_deleted"] == 0


@pytest.mark.django_db
def test_a_record_of_an_active_tus_session_is_left_to_the_session(user, settings, monkeypatch):
    file = abandoned_upload(user, monkeypatch)
    session = UploadSession.objects.create(
        owner=user, file=file, length=10, expires_at=timezone.now() + timedelta(hours=1)
    )
    age(file, 120)

    assert cleanup_stale_uploading_files(stale_minutes=60).deleted == 0
    assert UploadFile.objects.filter(pk=file.pk).exists()

    session.status = UploadSession.Status.EXPIRED
    session.save(update_fields=["status"])
    assert cleanup_stale_uploading_files(stale_minutes=60).deleted == 1
    assert not file_storage().exists(file.storage_key)


@pytest.mark.django_db(transaction=True)
def test_a_slow_upload_keeps_its_record_fresh(user, monkeypatch):
    """Streaming for longer than UPLOAD_STALE_MINUTES is not being abandoned."""
    monkeypatch.setattr(uploads, "HEARTBEAT_SECONDS", 0)
    swept = []

    def meanwhile(i: int) -> None:
        if i == 3:
            # As if the upload had been streaming for two hours.
            UploadFile.objects.filter(status=UploadFile.Status.UPLOADING).update(
                updated_at=timezone.now() - timedelta(hours=2)
            )
        if i == 6:
            swept.append(cleanup_stale_uploading_files(stale_minutes=60).deleted)

    file = upload_file_create(owner=user, stream=HookedStream(8, meanwhile), filename="slow.bin")

    assert swept == [0]
    assert file.status == UploadFile.Status.STORED
    assert file.size == 8 * CHUNK
    assert file_storage().exists(file.storage_key)


@pytest.mark.django_db(transaction=True)
def test_an_upload_swept_while_streaming_is_refused_not_stored(user, settings, monkeypatch):
    """A stored record must never point at an object the sweep deleted."""

    def meanwhile(i: int) -> None:
        if i == 3:
            UploadFile.objects.filter(status=UploadFile.Status.UPLOADING).update(
                updated_at=timezone.now() - timedelta(hours=2)
            )
            assert cleanup_stale_uploading_files(stale_minutes=60).deleted == 1

    with pytest.raises(ConflictError) as exc:
        upload_file_create(owner=user, stream=HookedStream(8, meanwhile), filename="late.bin")

    assert exc.value.code == "upload_abandoned"
    assert not UploadFile.objects.exists()
    assert files_on_disk(settings) == set()
