"""Keep time per file: ttl_hours sets expires_at, and cleanup and notices go by it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from common.exceptions import ValidationError
from common.models import OutboxEvent
from portal.models import UploadFile
from portal.services.cleanup import cleanup_expired_upload_files
from portal.services.expiry import notify_expiring_files
from portal.services.file_records import clean_ttl_hours
from portal.services.uploads import upload_file_create
from portal.storage import file_storage
from portal.tests.aging import age
from portal.tests.streams import BytesStream


def store(owner, name: str, ttl_hours: int | None = None) -> UploadFile:
    return upload_file_create(
        owner=owner, stream=BytesStream(b"data"), filename=name, ttl_hours=ttl_hours
    )


@pytest.mark.parametrize(
    ("value", "hours"), [(None, None), ("", None), ("  ", None), ("6", 6), (6, 6), (720, 720)]
)
def test_keep_times_accepted(settings, value, hours):
    settings.FILE_UPLOAD_MAX_TTL_HOURS = 720
    assert clean_ttl_hours(value) == hours


@pytest.mark.parametrize("value", ["0", 0, -1, 721, "1.5", 1.5, "abc", True, "1e3", [3]])
def test_keep_times_refused_name_the_field(settings, value):
    settings.FILE_UPLOAD_MAX_TTL_HOURS = 720
    with pytest.raises(ValidationError) as caught:
        clean_ttl_hours(value)
    assert caught.value.details["field"] == "ttl_hours"


def test_a_chosen_keep_time_sets_expires_at(user, settings):
    settings.FILE_UPLOAD_TTL_HOURS = 24
    short = store(user, "short.txt", ttl_hours=2)
    default = store(user, "default.txt")
    long = store(user, "long.txt", ttl_hours=200)
    assert short.expires_at - short.stored_at == timedelta(hours=2)
    assert default.expires_at - default.stored_at == timedelta(hours=24)
    assert long.expires_at - long.stored_at == timedelta(hours=200)


def test_a_refused_keep_time_stores_nothing(user, settings):
    settings.FILE_UPLOAD_MAX_TTL_HOURS = 48
    with pytest.raises(ValidationError):
        store(user, "x.txt", ttl_hours=49)
    assert not UploadFile.objects.exists()


def test_cleanup_goes_by_each_files_expiry(user, settings):
    """Shorter keep times go early; extended ones outlive the global TTL."""
    settings.FILE_UPLOAD_TTL_HOURS = 24
    short = age([store(user, "short.txt")], hours=3, ttl_hours=2)[0]
    extended = age([store(user, "extended.txt")], hours=30, ttl_hours=48)[0]
    default_old = age([store(user, "old.txt")], hours=25)[0]
    default_young = age([store(user, "young.txt")], hours=2)[0]

    result = cleanup_expired_upload_files(ttl_hours=24)

    assert (result.deleted, result.remaining) == (2, 0)
    assert set(UploadFile.objects.values_list("pk", flat=True)) == {
        extended.pk,
        default_young.pk,
    }
    assert not file_storage().exists(short.storage_key)
    assert file_storage().exists(extended.storage_key)
    deleted = OutboxEvent.objects.filter(event_type="file.deleted")
    assert set(deleted.values_list("aggregate_id", flat=True)) == {
        str(short.id),
        str(default_old.id),
    }


def test_expiry_notices_go_by_each_files_expiry(user):
    soon = age([store(user, "soon.txt")], hours=1, ttl_hours=1.5)[0]
    age([store(user, "extended.txt")], hours=30, ttl_hours=48)
    age([store(user, "default.txt")], hours=10)

    result = notify_expiring_files(ttl_hours=24, notify_hours=1)

    assert (result.notified, result.skipped) == (1, 0)
    notice = OutboxEvent.objects.get(event_type="file.expiring")
    assert notice.aggregate_id == str(soon.id)
    assert notice.payload["file"]["expires_at"]


def test_stored_files_from_before_keep_times_still_expire_by_age(user):
    """A stored row without expires_at (never written by this code) is not kept for ever."""
    file = store(user, "legacy.txt")
    UploadFile.objects.filter(pk=file.pk).update(
        expires_at=None, created_at=timezone.now() - timedelta(hours=30)
    )
    assert cleanup_expired_upload_files(ttl_hours=24).deleted == 1
