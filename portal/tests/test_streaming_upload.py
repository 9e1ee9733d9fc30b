"""Simple uploads stream from the request body into storage: no spool file, ever.

Django's default upload handlers spool a file part to the temp directory
before the view runs; a process killed meanwhile left that spool file
behind, named by nothing. Here the bytes go straight to the object named by
an ``uploading`` record.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import FileSystemStorage
from django.test import Client
from django.utils import timezone

from accounts.services.tokens import token_create
from api.tests.conftest import ApiClient
from conftest import subprocess_env
from portal.models import UploadFile
from portal.services import streaming
from portal.services.cleanup import cleanup_stale_uploading_files
from portal.storage import file_storage
from tests.web import WebServer

SIZE = 3 * 1024 * 1024 + 17


def payload(size: int = SIZE) -> bytes:
    return (b"\x00\x01\x02doorito" * (size // 10 + 1))[:size]


def on_disk(root: str | Path) -> set[str]:
    root = Path(root)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def spool(settings, tmp_path, monkeypatch) -> Iterator[list[list[str]]]:
    """Where Django would spool uploads, and what was in it each time bytes reached storage."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(spool_dir)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # Django's handlers would spool any file
    seen: list[list[str]] = []
    original = FileSystemStorage._save  # type: ignore[attr-defined]  # private, not in the stubs
    original_write = streaming._write_file

    def watching_save(self, name, content):
        seen.append(os.listdir(spool_dir))
        return original(self, name, content)

    def watching_write(storage, **kwargs):  # a streamed upload into local storage
        seen.append(os.listdir(spool_dir))
        return original_write(storage, **kwargs)

    monkeypatch.setattr(FileSystemStorage, "_save", watching_save)
    monkeypatch.setattr(streaming, "_write_file", watching_write)
    yield seen
    assert os.listdir(spool_dir) == []


@pytest.mark.django_db(transaction=True)
def test_api_upload_writes_no_spool_file_and_stores_the_exact_bytes(user, spool, settings):
    _, raw = token_create(user=user, name="t")
    data = payload()

    response = ApiClient(raw).post("/api/files", {"file": _named(data, "big.bin")})

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["size"] == SIZE
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert spool == [[]]  # storage was written while the temp dir stayed empty
    file = UploadFile.objects.get(pk=body["id"])
    with file_storage().open(file.storage_key) as fh:
        assert fh.read() == data
    assert on_disk(settings.MEDIA_ROOT) == {file.storage_key}


@pytest.mark.django_db(transaction=True)
def test_portal_form_streams_too_and_still_checks_csrf(user, spool, settings):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/upload/")
    token = client.cookies["csrftoken"].value
    data = payload()

    forged = client.post("/upload/simple/", {"file": _named(data, "a.bin")})
    assert forged.status_code == 403
    assert not UploadFile.objects.exists()
    assert on_disk(settings.MEDIA_ROOT) == set()  # what streamed in was removed

    response = client.post(
        "/upload/simple/", {"file": _named(data, "a.bin"), "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302, response.content
    file = UploadFile.objects.get()
    assert file.status == UploadFile.Status.STORED
    assert file.sha256 == hashlib.sha256(data).hexdigest()
    assert file.size == SIZE
    assert [] in spool and all(entry == [] for entry in spool)


@pytest.mark.django_db(transaction=True)
def test_size_limit_is_enforced_while_streaming(user, spool, settings):
    settings.FILE_UPLOAD_MAX_SIZE = 100_000
    _, raw = token_create(user=user, name="t")

    # Within the multipart allowance, so only the streaming check can catch it.
    response = ApiClient(raw).post("/api/files", {"file": _named(payload(130_000), "x.bin")})

    assert response.status_code == 413, response.content
    assert response.json()["error"]["details"]["max_size"] == 100_000
    file = UploadFile.objects.get()
    assert file.status == UploadFile.Status.FAILED
    assert file.storage_key == ""
    assert on_disk(settings.MEDIA_ROOT) == set()
    assert all(entry == [] for entry in spool)  # refused while streaming, never spooled


def _named(data: bytes, name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


@pytest.mark.processes
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_killed_web_server_leaves_no_spool_file_only_a_record_named_object(
    user, tmp_path, settings
):
    """gunicorn SIGKILLed while a client is halfway through a 4 MiB simple upload."""
    _, raw = token_create(user=user, name="t")
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    media = Path(settings.MEDIA_ROOT)  # the server's too (subprocess_env)
    env = subprocess_env(TMPDIR=str(spool_dir))
    server = WebServer(env, tmp_path / "web.log", "--workers", "1")
    boundary = "doorito-boundary"
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = 4 * 1024 * 1024
    request = (
        f"POST /api/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {raw}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(head) + size + len(tail)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", server.port))
    try:
        sock.sendall(request + head + payload(size // 2))
        deadline = time.monotonic() + 30
        # Wait until the server holds the bytes, wherever it puts them.
        while time.monotonic() < deadline:
            partial = [p for p in media.rglob("*") if p.is_file() and p.stat().st_size >= 1 << 20]
            if partial or os.listdir(spool_dir):
                break
            time.sleep(0.1)
        assert os.listdir(spool_dir) == [], "the body was spooled to the temp directory"
        assert partial, server.output()
        server.kill()
    finally:
        sock.close()
        server.stop()

    assert os.listdir(spool_dir) == []
    file = UploadFile.objects.get(owner=user)
    assert file.status == UploadFile.Status.UPLOADING
    assert on_disk(media) == {file.storage_key}  # the only thing left, named by its record

    result = cleanup_stale_uploading_files(
        stale_minutes=60, now=timezone.now() + timedelta(minutes=61)
    )
    assert result.deleted == 1
    assert not UploadFile.objects.exists()
    assert on_disk(media) == set()


@pytest.mark.django_db(transaction=True)
def test_streamed_upload_on_each_storage_with_fields_after_the_file(user, storage, settings):
    _, raw = token_create(user=user, name="t")
    data = os.urandom(3 * 1024 * 1024 + 5)  # several reads, not a multiple of one

    # The test client writes the parts in this order: the metadata comes after the file.
    response = ApiClient(raw).post(
        "/api/files", {"file": _named(data, "big.bin"), "metadata": '{"k": "v"}'}
    )

    assert response.status_code == 201, response.content
    file = UploadFile.objects.get(pk=response.json()["id"])
    assert (file.status, file.size, file.metadata) == (
        UploadFile.Status.STORED,
        len(data),
        {"k": "v"},
    )
    assert file.sha256 == hashlib.sha256(data).hexdigest()
    assert storage.keys() == {file.storage_key}
    assert storage.read(file.storage_key) == data
    if storage.kind == "local":  # written by hand, with FileSystemStorage's modes
        mode = (Path(settings.MEDIA_ROOT) / file.storage_key).stat().st_mode & 0o777
        assert mode == settings.FILE_UPLOAD_PERMISSIONS


@pytest.mark.django_db(transaction=True)
def test_a_body_cut_short_is_refused_and_leaves_nothing(user, storage):
    _, raw = token_create(user=user, name="t")
    boundary = "cut-short"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
    ).encode()
    body = head + payload(2 * 1024 * 1024)  # no closing boundary: the client went away

    response = ApiClient(raw).generic(
        "POST", "/api/files", body, content_type=f"multipart/form-data; boundary={boundary}"
    )

    assert response.status_code == 400, response.content
    assert not UploadFile.objects.exists()
    assert storage.keys() == set()
    assert storage.pending_multipart_uploads() == 0


@pytest.mark.parametrize(
    ("extra_part", "status"),
    [
        # RFC 7578 forbids Content-Transfer-Encoding; Django decoded base64, this refuses it.
        ('name="file"; filename="b.bin"\r\nContent-Transfer-Encoding: base64', 400),
        ('name="note"', 413),  # a field over DATA_UPLOAD_MAX_MEMORY_SIZE
    ],
)
@pytest.mark.django_db(transaction=True)
def test_refused_bodies_leave_nothing(user, settings, extra_part, status):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    _, raw = token_create(user=user, name="t")
    boundary = "refused"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n'
    ).encode() + payload(300_000)
    body += f"\r\n--{boundary}\r\nContent-Disposition: form-data; {extra_part}\r\n\r\n".encode()
    body += b"x" * 2000 + f"\r\n--{boundary}--\r\n".encode()

    response = ApiClient(raw).generic(
        "POST", "/api/files", body, content_type=f"multipart/form-data; boundary={boundary}"
    )

    assert response.status_code == status, response.content
    assert not UploadFile.objects.exists()
    assert on_disk(settings.MEDIA_ROOT) == set()
