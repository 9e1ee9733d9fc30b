"""Expiry notices: one file.expiring per stored file, however often the task runs."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from common.models import OutboxEvent
from portal.models import UploadFile
from portal.services.expiry import notify_expiring_files
from portal.services.uploads import upload_file_create
from portal.tasks import notify_expiring_files_task
from portal.tests.streams import BytesStream


def aged_file(owner, name: str, hours: float) -> UploadFile:
    file = upload_file_create(owner=owner, stream=BytesStream(b"data"), filename=name)
    created = timezone.now() - timedelta(hours=hours)
    UploadFile.objects.filter(pk=file.pk).update(
        created_at=created, stored_at=created, expires_at=created + timedelta(hours=24)
    )
    return file


def test_task_twice_emits_each_notice_once(user, settings):
    settings.FILE_UPLOAD_TTL_HOURS = 24
    settings.FILE_UPLOAD_EXPIRY_NOTIFY_HOURS = 1
    due = aged_file(user, "due.txt", 23.5)
    overdue = aged_file(user, "overdue.txt", 25)  # past TTL, cleanup not run yet
    aged_file(user, "young.txt", 10)
    failed = UploadFile.objects.create(owner=user, filename="bad", status="failed")
    UploadFile.objects.filter(pk=failed.pk).update(
        created_at=timezone.now() - timedelta(hours=23.5)
    )

    first = notify_expiring_files_task.apply().get()
    second = notify_expiring_files_task.apply().get()

    assert first == {"notified": 2, "skipped": 0}
    assert second == {"notified": 0, "skipped": 2}
    notices = OutboxEvent.objects.filter(event_type="file.expiring")
    assert sorted(notices.values_list("aggregate_id", flat=True)) == sorted(
        [str(due.id), str(overdue.id)]
    )
    payload = notices.get(aggregate_id=str(due.id)).payload
    assert payload["schema_version"] == 1
    assert payload["file"]["filename"] == "due.txt"
    assert payload["file"]["download_url"]
    assert payload["file"]["expires_at"]
    assert payload["uploader"]["email"] == user.email


def test_window_follows_the_arguments(user):
    aged_file(user, "a.txt", 20)
    assert notify_expiring_files(ttl_hours=24, notify_hours=1).notified == 0
    result = notify_expiring_files(ttl_hours=24, notify_hours=5)
    assert (result.notified, result.skipped) == (1, 0)


def test_many_files_are_paged(user):
    for i in range(8):
        aged_file(user, f"{i}.txt", 23.9)
    assert notify_expiring_files(ttl_hours=24, notify_hours=1, chunk_size=3).notified == 8
    assert notify_expiring_files(ttl_hours=24, notify_hours=1, chunk_size=3).skipped == 8
