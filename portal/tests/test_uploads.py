"""Streaming uploads, on local storage and on S3 (moto), against real PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import re
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from django.db import connection

from common.exceptions import (
    PayloadTooLargeError,
    PermissionDeniedError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from common.models import OutboxEvent
from portal.models import UploadFile
from portal.services.file_records import upload_file_delete
from portal.services.uploads import upload_file_create
from portal.tests.streams import EXE_HEAD, BytesStream, CountingStream, tiny_png

MB = 1024 * 1024
KEY_RE = re.compile(r"^uploads/\d{4}/\d{2}/[0-9a-f]{32}$")


def events(event_type: str | None = None):
    qs = OutboxEvent.objects.all()
    return qs.filter(event_type=event_type) if event_type else qs


def fetch(client, url: str) -> tuple[int, dict, bytes]:
    """GET a download URL: through Django's test client when it is ours, else over HTTP."""
    parts = urlsplit(url)
    if parts.path.startswith("/portal/download/"):
        response = client.get(parts.path)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        return response.status_code, dict(response.headers), body
    response = httpx.get(url)
    return response.status_code, dict(response.headers), response.content


def test_oversized_stream_is_refused_early(storage, user, settings):
    stream = CountingStream(60 * MB)
    with pytest.raises(PayloadTooLargeError) as exc_info:
        upload_file_create(owner=user, stream=stream, filename="big.bin")

    assert stream.bytes_read <= settings.FILE_UPLOAD_MAX_SIZE + 1
    assert exc_info.value.status_code == 413
    assert storage.keys() == set()
    assert storage.pending_multipart_uploads() == 0
    assert not UploadFile.objects.filter(status=UploadFile.Status.STORED).exists()
    failed = UploadFile.objects.get()
    assert failed.status == UploadFile.Status.FAILED
    assert "larger than the limit" in failed.error_message
    assert failed.storage_key == ""
    assert exc_info.value.as_dict()["error"]["details"]["file_id"] == str(failed.id)
    assert not events().exists()


def test_file_exactly_at_the_limit_is_stored(storage, user, settings):
    settings.FILE_UPLOAD_MAX_SIZE = 2 * MB
    file = upload_file_create(owner=user, stream=CountingStream(2 * MB), filename="edge.bin")
    assert file.size == 2 * MB
    with pytest.raises(PayloadTooLargeError):
        upload_file_create(owner=user, stream=CountingStream(2 * MB + 1), filename="over.bin")
    assert storage.keys() == {file.storage_key}


def test_disallowed_content_is_refused_despite_allowed_extension(storage, user, settings):
    settings.FILE_UPLOAD_ALLOWED_TYPES = ["image/png"]
    stream = CountingStream(5 * MB, head=EXE_HEAD, fill=b"\x00")
    with pytest.raises(UnsupportedMediaTypeError) as exc_info:
        upload_file_create(owner=user, stream=stream, filename="holiday.png")

    assert exc_info.value.status_code == 415
    assert stream.bytes_read <= 8192  # refused from the first bytes
    assert storage.keys() == set()
    failed = UploadFile.objects.get()
    assert failed.status == UploadFile.Status.FAILED
    assert "not accepted" in failed.error_message
    assert not events().exists()

    # The same rule accepts a real PNG, and refuses PNG bytes named .exe.
    ok = upload_file_create(owner=user, stream=BytesStream(tiny_png()), filename="dot.png")
    assert ok.content_type == "image/png"
    with pytest.raises(UnsupportedMediaTypeError):
        upload_file_create(owner=user, stream=BytesStream(tiny_png()), filename="dot.exe")
    assert storage.keys() == {ok.storage_key}
    assert events("file.stored").count() == 1


def test_stored_file_matches_bytes_and_emits_one_event(storage, user, client):
    data = os.urandom(3 * MB + 17)
    file = upload_file_create(
        owner=user,
        stream=BytesStream(data),
        filename="report.bin",
        content_type="application/x-report",
        metadata={"source": "test"},
    )
    file.refresh_from_db()
    assert file.status == UploadFile.Status.STORED
    assert file.size == len(data)
    assert file.sha256 == hashlib.sha256(data).hexdigest()
    assert KEY_RE.match(file.storage_key)
    assert storage.read(file.storage_key) == data
    assert file.expires_at is not None and file.stored_at is not None

    [event] = events()
    assert event.event_type == "file.stored"
    assert event.aggregate_id == str(file.id)
    payload = event.payload
    assert payload["schema_version"] == 1
    assert payload["file"]["id"] == str(file.id)
    assert payload["file"]["sha256"] == file.sha256
    assert payload["file"]["size"] == len(data)
    assert payload["file"]["filename"] == "report.bin"
    assert payload["file"]["content_type"] == "application/x-report"
    assert payload["file"]["expires_at"] == file.expires_at.isoformat()
    assert payload["uploader"] == {"id": str(user.id), "email": user.email}

    status, _, body = fetch(client, payload["file"]["download_url"])
    assert status == 200
    assert body == data


def test_failed_transaction_leaves_no_row_event_or_object(storage, user):
    # A real database failure inside the recording transaction: the outbox
    # insert raises, so the file row must roll back with it.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION portal_test_refuse_event() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'outbox refused by test'; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER portal_test_refuse_event BEFORE INSERT ON common_outboxevent
            FOR EACH ROW EXECUTE FUNCTION portal_test_refuse_event();
            """
        )
    with pytest.raises(Exception, match="outbox refused by test"):
        upload_file_create(owner=user, stream=BytesStream(b"hello world"), filename="a.txt")
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER portal_test_refuse_event ON common_outboxevent;"
            "DROP FUNCTION portal_test_refuse_event();"
        )
    assert not UploadFile.objects.exists()
    assert not events().exists()
    assert storage.keys() == set()


LONG_NAME = "é" * 290 + ".pdf"


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("../../etc/passwd", "../../etc/passwd"),
        ("a/b\\c", "a/b\\c"),
        ("x" * 300, "x" * 255),
        (LONG_NAME, "é" * 251 + ".pdf"),
        ("日本語 ファイル 📄.txt", "日本語 ファイル 📄.txt"),
        ('quote"semi;colon%20.txt', 'quote"semi;colon%20.txt'),
        ("", "unnamed"),
    ],
)
def test_filenames_are_data_never_paths(storage, user, client, given, shown):
    file = upload_file_create(owner=user, stream=BytesStream(b"payload"), filename=given)
    file.refresh_from_db()
    assert file.filename == shown
    assert KEY_RE.match(file.storage_key)
    assert storage.keys() == {file.storage_key}  # nothing written anywhere else

    [event] = events("file.stored")
    assert event.payload["file"]["filename"] == shown
    status, headers, body = fetch(client, event.payload["file"]["download_url"])
    assert status == 200 and body == b"payload"
    disposition = headers.get("Content-Disposition") or headers.get("content-disposition")
    fallback = re.search(r'filename="([^"]*)"', disposition).group(1)
    assert "/" not in fallback and "\\" not in fallback and fallback.isascii()
    encoded = re.search(r"filename\*=UTF-8''(\S+)", disposition).group(1)
    assert unquote(encoded) == shown


def test_delete_by_owner_or_staff_only(storage, user, other_user, staff_user):
    first = upload_file_create(owner=user, stream=BytesStream(b"one"), filename="1.txt")
    second = upload_file_create(owner=user, stream=BytesStream(b"two"), filename="2.txt")

    with pytest.raises(PermissionDeniedError):
        upload_file_delete(file=first, actor=other_user)
    assert storage.keys() == {first.storage_key, second.storage_key}
    assert not events("file.deleted").exists()

    upload_file_delete(file=first, actor=user)
    upload_file_delete(file=second, actor=staff_user)
    assert storage.keys() == set()
    assert not UploadFile.objects.exists()
    deleted = {e.aggregate_id: e.payload for e in events("file.deleted")}
    assert deleted[str(first.id)]["reason"] == "owner"
    assert deleted[str(second.id)]["reason"] == "staff"
    assert deleted[str(first.id)]["file"]["download_url"] is None


def test_upload_refuses_bad_metadata_without_writing(storage, user):
    from common.exceptions import ValidationError

    with pytest.raises(ValidationError):
        upload_file_create(owner=user, stream=BytesStream(b"x"), filename="a", metadata=["x"])
    assert not UploadFile.objects.exists()
    assert storage.keys() == set()


@pytest.mark.parametrize("name", ["nul\x00in.txt", "\x00", "half\ud800pair.txt"])
def test_filename_that_cannot_be_stored_is_refused_before_any_write(storage, user, name):
    with pytest.raises(ValidationError) as exc:
        upload_file_create(owner=user, stream=BytesStream(b"payload"), filename=name)
    assert exc.value.details["field"] == "filename"
    assert "NUL" in exc.value.message
    assert not UploadFile.objects.exists()
    assert storage.keys() == set()
