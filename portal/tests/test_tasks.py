"""The portal tasks as the seed note defines them, and run by a real worker."""

from __future__ import annotations

import pytest
from django.conf import settings

from portal import tasks
from portal.models import UploadFile
from portal.services.uploads import upload_file_create
from portal.storage import file_storage
from portal.tests.aging import age
from portal.tests.streams import BytesStream


@pytest.mark.parametrize(
    ("task", "name"),
    [
        (tasks.cleanup_expired_upload_files_task, "portal.tasks.cleanup_expired_upload_files_task"),
        (tasks.notify_expiring_files_task, "portal.tasks.notify_expiring_files_task"),
    ],
)
def test_task_policy(task, name):
    assert task.name == name
    assert task.max_retries == 2
    assert task.default_retry_delay == 60
    assert settings.CELERY_TASK_ROUTES[name] == {"queue": "default"}


def test_beat_entries():
    schedule = settings.CELERY_BEAT_SCHEDULE
    cleanup = schedule["cleanup-expired-upload-files"]
    assert cleanup["task"] == "portal.tasks.cleanup_expired_upload_files_task"
    assert cleanup["schedule"].minute == {0}
    assert cleanup["schedule"].hour == {0, 6, 12, 18}
    notify = schedule["notify-expiring-files"]
    assert notify["task"] == "portal.tasks.notify_expiring_files_task"
    assert notify["schedule"].minute == {0}
    assert len(notify["schedule"].hour) == 24


@pytest.mark.processes
@pytest.mark.slow
def test_worker_runs_both_tasks(celery_worker, django_user_model):
    user = django_user_model.objects.create_user("w@example.com", "pw-worker-1234")
    files = [
        upload_file_create(owner=user, stream=BytesStream(b"%d" % i), filename=f"{i}.txt")
        for i in range(3)
    ]
    age(files[:1], hours=23.5)
    age(files[1:], hours=30)

    notify = tasks.notify_expiring_files_task.delay().get(timeout=60)
    assert notify == {"notified": 3, "skipped": 0}
    cleanup = tasks.cleanup_expired_upload_files_task.delay().get(timeout=60)
    assert cleanup == {"deleted": 2, "remaining": 0}
    assert list(UploadFile.objects.values_list("pk", flat=True)) == [files[0].pk]
    assert not file_storage().exists(files[1].storage_key)
    assert file_storage().exists(files[0].storage_key)
