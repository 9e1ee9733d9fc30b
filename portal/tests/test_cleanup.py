"""TTL cleanup through the seed's task, the service on both storages, and the command."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from common.models import OutboxEvent
from portal.models import UploadFile
from portal.services.cleanup import cleanup_expired_upload_files
from portal.services.uploads import upload_file_create
from portal.storage import file_storage
from portal.tasks import cleanup_expired_upload_files_task
from portal.tests.aging import age, expired_files_on_disk
from portal.tests.streams import BytesStream


def make_files(owner, count: int, *, age_hours: float) -> list[UploadFile]:
    files = [
        upload_file_create(owner=owner, stream=BytesStream(b"%d" % i), filename=f"f{i}.txt")
        for i in range(count)
    ]
    return age(files, hours=age_hours)


@pytest.mark.slow
def test_2500_expired_files_take_three_task_runs(user, settings, follow_ups):
    settings.FILE_UPLOAD_TTL_HOURS = 24
    # Made in bulk (2 500 uploads took minutes on a busy machine); the fresh ones uploaded.
    expired_keys = expired_files_on_disk(user, 2500)
    fresh = make_files(user, 5, age_hours=23)
    # A row whose object someone already removed is cleaned without error.
    file_storage().delete(expired_keys[0])

    runs = [cleanup_expired_upload_files_task.apply().get() for _ in range(4)]

    assert runs == [
        {"deleted": 1000, "remaining": 1500},
        {"deleted": 1000, "remaining": 500},
        {"deleted": 500, "remaining": 0},
        {"deleted": 0, "remaining": 0},
    ]
    assert set(UploadFile.objects.values_list("pk", flat=True)) == {f.pk for f in fresh}
    on_disk = {
        str(p.relative_to(settings.MEDIA_ROOT))
        for p in Path(settings.MEDIA_ROOT).rglob("*")
        if p.is_file()
    }
    assert on_disk == {f.storage_key for f in fresh}
    deleted = OutboxEvent.objects.filter(event_type="file.deleted")
    assert deleted.count() == 2500
    assert deleted.filter(payload__reason="expired").count() == 2500
    assert len(follow_ups) == 2  # after the runs that left 1 500 and 500


def test_cleanup_on_each_storage(storage, user):
    expired = make_files(user, 25, age_hours=30)
    fresh = make_files(user, 2, age_hours=1)
    file_storage().delete(expired[3].storage_key)
    failed = UploadFile.objects.create(owner=user, filename="x", status="failed")
    UploadFile.objects.filter(pk=failed.pk).update(created_at=timezone.now() - timedelta(days=2))

    results = [cleanup_expired_upload_files(ttl_hours=24, batch_size=10) for _ in range(3)]

    assert [(r.deleted, r.remaining) for r in results] == [(10, 16), (10, 6), (6, 0)]
    assert storage.keys() == {f.storage_key for f in fresh}
    assert set(UploadFile.objects.values_list("pk", flat=True)) == {f.pk for f in fresh}
    # Failed files were never announced, so only the 25 stored ones get file.deleted.
    assert OutboxEvent.objects.filter(event_type="file.deleted").count() == 25


class Terminal(StringIO):
    """Captured output that says it is a terminal, as a shell's would."""

    def isatty(self) -> bool:
        return True


def test_command_shows_progress_on_a_terminal(user):
    make_files(user, 7, age_hours=30)
    out = Terminal()
    call_command("cleanup_uploads", "--batch-size", "3", stdout=out)
    text = out.getvalue()
    assert "\rdeleted 3 expired files, 4 remaining" in text
    assert "\rdeleted 6 expired files, 1 remaining" in text
    assert "\rdeleted 7 expired files, 0 remaining" in text
    assert text.rstrip().endswith("Done: 7 expired files deleted.")
    assert not UploadFile.objects.exists()


def test_command_is_quiet_when_piped(user):
    make_files(user, 7, age_hours=30)
    out = StringIO()
    call_command("cleanup_uploads", "--batch-size", "3", stdout=out)
    assert out.getvalue() == "Done: 7 expired files deleted.\n"
    assert not UploadFile.objects.exists()


@pytest.mark.parametrize("args", [["--ttl-hours", "0"], ["--batch-size", "many"]])
def test_command_refuses_bad_input(user, args):
    make_files(user, 2, age_hours=30)
    with pytest.raises(CommandError):
        call_command("cleanup_uploads", *args, stdout=StringIO())
    assert UploadFile.objects.count() == 2


def test_cleanup_events_reach_subscribed_endpoints(user):
    from common.models import WebhookDelivery, WebhookEndpoint
    from common.services.signing import generate_secret

    endpoint = WebhookEndpoint.objects.create(
        url="http://127.0.0.1:9/hook", secret=generate_secret(), event_types=["file.deleted"]
    )
    WebhookEndpoint.objects.create(
        url="http://127.0.0.1:9/other", secret=generate_secret(), event_types=["file.stored"]
    )
    make_files(user, 4, age_hours=30)
    assert cleanup_expired_upload_files(ttl_hours=24).deleted == 4
    deliveries = WebhookDelivery.objects.filter(event__event_type="file.deleted")
    assert deliveries.count() == 4
    assert set(deliveries.values_list("endpoint_id", flat=True)) == {endpoint.id}
    assert set(deliveries.values_list("status", flat=True)) == {"pending"}


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_split_the_work(user):
    import threading

    from django.db import connection

    make_files(user, 300, age_hours=30)
    results, barrier = [], threading.Barrier(3)

    def run():
        try:
            barrier.wait()
            results.append(cleanup_expired_upload_files(ttl_hours=24, batch_size=1000).deleted)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(results) == 300
    assert not UploadFile.objects.exists()
    assert OutboxEvent.objects.filter(event_type="file.deleted").count() == 300
