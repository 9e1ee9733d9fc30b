"""Per-user quotas: limits, the one admission check, exact under concurrency, space back."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from django.db import connection, transaction

from common.exceptions import PayloadTooLargeError
from portal.models import UploadFile, UploadSession, UserQuota
from portal.selectors import quota_for_owner, quota_limits_for_owner, quota_usage_for_owner
from portal.services.file_records import upload_file_delete
from portal.services.quotas import QuotaExceededError, admit_upload
from portal.services.tus.sessions import upload_session_create
from portal.services.tus.values import UploadMetadata
from portal.services.uploads import upload_file_create
from portal.tests.streams import BytesStream


def store(owner, data: bytes = b"0123456789", name: str = "f.txt") -> UploadFile:
    return upload_file_create(owner=owner, stream=BytesStream(data), filename=name)


def start_tus(owner, length: int | None, *, partial: bool = False) -> UploadSession:
    return upload_session_create(
        owner=owner,
        length=length,
        metadata=UploadMetadata(),
        partial=partial,
    )


def test_limits_come_from_settings_unless_staff_set_them(user, settings):
    settings.USER_QUOTA_BYTES = 1000
    settings.USER_QUOTA_FILES = 0
    limits = quota_limits_for_owner(owner=user)
    assert (limits.max_bytes, limits.max_files) == (1000, 0)
    UserQuota.objects.create(owner=user, max_files=3)  # bytes: still the default
    limits = quota_limits_for_owner(owner=user)
    assert (limits.max_bytes, limits.max_files) == (1000, 3)
    UserQuota.objects.filter(owner=user).update(max_bytes=0)  # 0: unlimited for this user
    assert quota_limits_for_owner(owner=user).max_bytes == 0


def test_without_quotas_nothing_is_counted(user, settings, django_assert_num_queries):
    settings.USER_QUOTA_BYTES = settings.USER_QUOTA_FILES = 0
    with transaction.atomic(), django_assert_num_queries(1):  # the override lookup only
        admit_upload(owner=user, size=10**15)
    assert quota_for_owner(owner=user) is None


def test_stored_files_and_unfinished_uploads_count(user, settings):
    settings.USER_QUOTA_BYTES = 10_000
    store(user, b"x" * 100)
    start_tus(user, 1000)
    start_tus(user, 300, partial=True)  # its file is counted by its final upload
    UploadFile.objects.create(owner=user, filename="bad", status="failed", size=5000)
    usage = quota_usage_for_owner(owner=user)
    assert (usage.bytes, usage.files) == (1400, 2)


def test_the_files_quota_refuses_the_next_upload(user, settings):
    settings.USER_QUOTA_FILES = 2
    store(user)
    start_tus(user, 10)
    with pytest.raises(QuotaExceededError) as caught:
        start_tus(user, 10)
    error = caught.value
    assert isinstance(error, PayloadTooLargeError) and error.status_code == 413
    assert error.code == "quota_exceeded"
    assert error.details == {"quota": "files", "limit": 2, "used": 2}
    assert UploadSession.objects.count() == 1


def test_the_bytes_quota_refuses_a_tus_upload_by_its_length(user, settings):
    settings.USER_QUOTA_BYTES = 100
    store(user, b"x" * 60)
    start_tus(user, 40)  # exactly full
    with pytest.raises(QuotaExceededError) as caught:
        start_tus(user, 1)
    assert caught.value.details == {"quota": "bytes", "limit": 100, "used": 100, "size": 1}


def test_a_simple_upload_past_the_quota_is_refused_when_its_size_is_known(user, settings):
    """Its length is unknown at its start; the exact check when it is recorded refuses it."""
    settings.USER_QUOTA_BYTES = 100
    kept = store(user, b"x" * 60)
    with pytest.raises(QuotaExceededError) as caught:
        store(user, b"y" * 41, name="big.txt")
    failed = UploadFile.objects.get(pk=caught.value.details["file_id"])
    assert (failed.status, failed.storage_key) == ("failed", "")
    assert "quota" in failed.error_message
    on_disk = [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]
    assert [str(p.relative_to(settings.MEDIA_ROOT)) for p in on_disk] == [kept.storage_key]
    assert quota_usage_for_owner(owner=user).bytes == 60


def test_deleting_files_gives_the_space_back(user, settings):
    settings.USER_QUOTA_BYTES = 100
    settings.USER_QUOTA_FILES = 1
    first = store(user, b"x" * 90)
    with pytest.raises(QuotaExceededError):
        store(user, b"y" * 20)
    upload_file_delete(file=first, actor=user)
    assert store(user, b"y" * 20).status == "stored"


@pytest.mark.django_db(transaction=True)
def test_admit_upload_needs_the_callers_transaction(user, settings):
    settings.USER_QUOTA_FILES = 5
    with pytest.raises(RuntimeError):
        admit_upload(owner=user, size=1)


def test_deferred_length_is_checked_when_it_is_declared(user, settings):
    from portal.services.tus.append import upload_session_append

    settings.USER_QUOTA_BYTES = 100
    session = start_tus(user, None)
    with pytest.raises(QuotaExceededError):
        upload_session_append(
            owner=user,
            upload_id=session.id,
            offset=0,
            stream=BytesStream(b""),
            content_length=0,
            upload_length=101,
        )
    session.refresh_from_db()
    assert session.length is None


@pytest.mark.django_db(transaction=True)
def test_parallel_creations_cannot_overshoot(user, settings):
    """20 creations at once against room for 5: exactly 5 are admitted."""
    settings.USER_QUOTA_BYTES = 500
    barrier = threading.Barrier(20)
    outcomes: list[str] = []

    def create() -> None:
        try:
            barrier.wait()
            start_tus(user, 100)
            outcomes.append("created")
        except QuotaExceededError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["created"] * 5 + ["refused"] * 15
    assert UploadSession.objects.filter(owner=user).count() == 5
    assert quota_usage_for_owner(owner=user).bytes == 500
