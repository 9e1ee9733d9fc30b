"""Stock tus clients against the live server, and the stale-upload sweep on a real worker."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError

from accounts.models import User
from accounts.services.tokens import token_create
from common.models import OutboxEvent
from portal.models import UploadFile, UploadPart, UploadSession
from portal.storage import file_storage

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024


@pytest.fixture
def owner(transactional_db) -> User:
    return User.objects.create_user("tuspy@example.com", "pw-tuspy-1234")


@pytest.fixture
def client(live_server, owner) -> tus_client.TusClient:
    raw = token_create(user=owner, name="tuspy")[1]
    return tus_client.TusClient(
        live_server.url + "/api/tus/", headers={"Authorization": f"Bearer {raw}"}
    )


def _random_file(path: Path, size: int) -> str:
    with path.open("wb") as fh:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, MB))
            fh.write(chunk)
            remaining -= len(chunk)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stored_sha256(file: UploadFile) -> str:
    digest = hashlib.sha256()
    with file_storage().open(file.storage_key, "rb") as fh:
        while chunk := fh.read(MB):
            digest.update(chunk)
    return digest.hexdigest()


def _session(url: str) -> UploadSession:
    return UploadSession.objects.get(id=url.rstrip("/").rsplit("/", 1)[1])


@pytest.mark.slow
def test_tuspy_uploads_20_mb_in_1_mb_chunks(client, tmp_path, owner):
    path = tmp_path / "big.bin"
    expected = _random_file(path, 20 * 1000 * 1000)
    uploader = client.uploader(
        str(path),
        chunk_size=MB,
        metadata={"filename": "big.bin", "filetype": "application/octet-stream"},
        upload_checksum=True,
    )
    uploader.upload()

    session = _session(uploader.url)
    assert session.status == UploadSession.Status.COMPLETE
    file = session.file
    assert file.status == UploadFile.Status.STORED
    assert file.owner == owner
    assert file.size == 20 * 1000 * 1000
    assert file.sha256 == expected
    assert _stored_sha256(file) == expected
    assert OutboxEvent.objects.filter(event_type="file.stored").count() == 1
    assert OutboxEvent.objects.get(event_type="file.stored").aggregate_id == str(file.id)
    assert UploadPart.objects.count() == 0


def test_tuspy_resumes_from_the_servers_offset(client, tmp_path):
    path = tmp_path / "resume.bin"
    expected = _random_file(path, 5 * MB + 123)
    first = client.uploader(str(path), chunk_size=MB, metadata={"filename": "resume.bin"})
    first.upload(stop_at=2 * MB + 10)
    session = _session(first.url)
    assert session.status == UploadSession.Status.ACTIVE
    assert 2 * MB <= session.offset < 5 * MB
    assert not UploadFile.objects.exists()

    # A new uploader (e.g. after a crash) knows only the URL.
    second = client.uploader(str(path), url=first.url, chunk_size=MB)
    assert second.offset == session.offset
    second.upload()

    session.refresh_from_db()
    assert session.file.sha256 == expected
    assert _stored_sha256(session.file) == expected
    assert session.file.filename == "resume.bin"
    assert OutboxEvent.objects.filter(event_type="file.stored").count() == 1


@pytest.mark.slow
@pytest.mark.processes
def test_expire_stale_upload_sessions_task_on_a_real_worker(client, tmp_path, celery_worker):
    from portal.tasks import expire_stale_upload_sessions_task

    path = tmp_path / "stale.bin"
    _random_file(path, 3 * MB)
    stale = client.uploader(str(path), chunk_size=MB)
    stale.upload(stop_at=MB)
    live = client.uploader(str(path), chunk_size=MB)
    live.upload(stop_at=MB)
    stale_session = _session(stale.url)
    keys = list(stale_session.parts.values_list("storage_key", flat=True))
    assert keys and all(file_storage().exists(k) for k in keys)
    UploadSession.objects.filter(id=stale_session.id).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )

    result = expire_stale_upload_sessions_task.delay().get(timeout=60)

    assert result == {"expired": 1, "remaining": 0, "stale_files_deleted": 0}
    stale_session.refresh_from_db()
    assert stale_session.status == UploadSession.Status.EXPIRED
    assert not any(file_storage().exists(k) for k in keys)
    assert not stale_session.parts.exists()
    assert _session(live.url).status == UploadSession.Status.ACTIVE
    assert _session(live.url).parts.exists()
    # The client is told the upload is gone.
    with pytest.raises(TusCommunicationError) as excinfo:
        client.uploader(str(path), url=stale.url, chunk_size=MB)
    assert excinfo.value.status_code == 410


@pytest.mark.processes
def test_tuspy_upload_on_local_disk_and_s3(client, tmp_path, storage):
    """Parts and assembly work on both storages; only the final object stays."""
    path = tmp_path / "both.bin"
    expected = _random_file(path, 3 * MB + 5)
    first = client.uploader(
        str(path), chunk_size=MB, metadata={"filename": "both.bin"}, upload_checksum=True
    )
    first.upload(stop_at=MB)
    stored_keys = storage.keys()
    assert len([k for k in stored_keys if k.startswith("tus/")]) == 1
    client.uploader(str(path), url=first.url, chunk_size=MB, upload_checksum=True).upload()

    file = _session(first.url).file
    assert file.sha256 == expected
    assert storage.keys() == {file.storage_key}
    assert hashlib.sha256(storage.read(file.storage_key)).hexdigest() == expected
    assert storage.pending_multipart_uploads() == 0


def test_expire_task_policy_and_beat_entry(settings):
    from portal.tasks import expire_stale_upload_sessions_task as task

    name = "portal.tasks.expire_stale_upload_sessions_task"
    assert task.name == name
    assert (task.max_retries, task.default_retry_delay) == (2, 60)
    assert settings.CELERY_TASK_ROUTES[name] == {"queue": "default"}
    entry = settings.CELERY_BEAT_SCHEDULE["expire-stale-upload-sessions"]
    assert entry["task"] == name
    assert entry["options"] == {"queue": "default"}


def test_expire_task_returns_counts_in_process(owner):
    """The task body without a worker: counts only what is due, and nothing twice."""
    from portal.services.tus.sessions import upload_session_create
    from portal.services.tus.values import UploadMetadata
    from portal.tasks import expire_stale_upload_sessions_task

    due = upload_session_create(owner=owner, length=10, metadata=UploadMetadata())
    upload_session_create(owner=owner, length=10, metadata=UploadMetadata())
    UploadSession.objects.filter(id=due.id).update(expires_at=timezone.now() - timedelta(hours=1))
    assert expire_stale_upload_sessions_task.apply().get() == {
        "expired": 1,
        "remaining": 0,
        "stale_files_deleted": 0,
    }
    assert expire_stale_upload_sessions_task.apply().get() == {
        "expired": 0,
        "remaining": 0,
        "stale_files_deleted": 0,
    }
