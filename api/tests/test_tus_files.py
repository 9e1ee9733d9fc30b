"""The tus 1.0 endpoint over real HTTP: metadata, finalising into files, concatenation."""

from __future__ import annotations

import hashlib
import http.client
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from django.utils import timezone

from api.tests.tus_helpers import (
    OCTET,
    TUS,
    Tus,
    metadata,
    part_objects,
    raw_token,
    session_for,
    stored_objects,
)
from portal.models import UploadFile, UploadSession

pytestmark = pytest.mark.django_db(transaction=True)


# --- metadata, finalisation, concatenation -----------------------------------------------


def test_metadata_lands_on_the_file_record_and_batch(tus):
    from common.models import OutboxEvent
    from portal.services.batches import batch_create

    batch = batch_create(owner=tus.user, expected_files=1)
    url = tus.create(
        8,
        **{
            "Upload-Metadata": metadata(
                filename="r\u00e9sum\u00e9.pdf",
                filetype="application/pdf",
                batch=str(batch.id),
                note="hi",
            )
        },
    )
    assert tus.patch(url, b"%PDF-1.4", 0).status_code == 204
    file = session_for(url).file
    assert file.filename == "r\u00e9sum\u00e9.pdf"
    assert file.content_type == "application/pdf"
    assert file.batch_id == batch.id
    assert file.metadata["note"] == "hi"
    batch.refresh_from_db()
    assert (batch.files_stored, batch.status) == (1, "complete")
    assert (
        OutboxEvent.objects.filter(event_type="file.stored", aggregate_id=str(file.id)).count() == 1
    )


def test_a_tus_file_is_created_before_it_is_stored(tus):
    """Its record is saved once, already stored: the payload must not read
    ``stored_at`` before ``created_at`` (it did, by a fraction of a millisecond)."""
    from common.models import OutboxEvent

    url = tus.create(5)
    assert tus.patch(url, b"hello", 0).status_code == 204
    file = session_for(url).file
    assert file.created_at <= file.stored_at
    payload = OutboxEvent.objects.get(event_type="file.stored", aggregate_id=str(file.id)).payload
    assert payload["file"]["created_at"] <= payload["file"]["stored_at"]


@pytest.mark.parametrize("key", ["filename", "filetype", "name", "type", "note"])
def test_nul_in_upload_metadata_is_400_naming_the_key(tus, key):
    response = tus.request(
        "POST", headers={"Upload-Length": "4", "Upload-Metadata": metadata(**{key: "a\x00b"})}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["details"] == {
        "field": f"Upload-Metadata {key!r}",
        "header": "Upload-Metadata",
        "key": key,
    }
    assert "NUL" in error["message"]
    assert not UploadSession.objects.exists()


def test_someone_elses_batch_is_refused_at_creation(live_server, tus, intruder):
    from portal.services.batches import batch_create

    batch = batch_create(owner=intruder)
    response = tus.request(
        "POST", headers={"Upload-Length": "3", "Upload-Metadata": metadata(batch=str(batch.id))}
    )
    assert response.status_code == 404
    assert UploadSession.objects.count() == 0


def test_refused_type_fails_the_upload_without_keeping_bytes(tus, settings):
    from common.models import OutboxEvent

    settings.FILE_UPLOAD_ALLOWED_TYPES = ["image/png"]
    url = tus.create(12, **{"Upload-Metadata": metadata(filename="run.sh")})
    response = tus.patch(url, b"#!/bin/sh\nls", 0)
    assert response.status_code == 415
    session = session_for(url)
    assert session.status == "failed"
    assert session.file.status == UploadFile.Status.FAILED
    assert part_objects(settings) == []
    assert not OutboxEvent.objects.filter(event_type="file.stored").exists()
    assert [p for p in stored_objects(settings)] == []
    # Refused after every byte arrived: subscribers hear of it once.
    [rejected] = OutboxEvent.objects.filter(event_type="file.rejected")
    assert rejected.aggregate_id == str(session.file.id)
    assert rejected.payload["reason"]["code"] == "unsupported_media_type"

    # Asked again, it is gone with the reason: never "every byte is here",
    # which a client would take for stored.
    head = tus.head(url)
    assert head.status_code == 410
    assert "Upload-Offset" not in head.headers
    again = tus.patch(url, b"", 12)
    assert again.status_code == 410
    error = again.json()["error"]
    assert error["code"] == "upload_failed"
    assert error["message"] == "This upload was refused: Files of type text/x-sh are not accepted."


@pytest.mark.parametrize(
    ("data", "meta"),
    [
        (b"<?php echo 1; ?>", {"filename": "a.png"}),
        (b"plain text here", {"filename": "a.png", "filetype": "image/png"}),
        (b"plain text here", {"filetype": "image/png"}),
    ],
)
def test_allow_list_needs_recognised_content_on_the_tus_path_too(tus, settings, data, meta):
    settings.FILE_UPLOAD_ALLOWED_TYPES = ["image/png", "image/jpeg", "application/pdf"]
    url = tus.create(len(data), **{"Upload-Metadata": metadata(**meta)})
    response = tus.patch(url, data, 0)
    assert response.status_code == 415, response.text
    assert session_for(url).file.status == UploadFile.Status.FAILED
    assert not UploadFile.objects.filter(status=UploadFile.Status.STORED).exists()


def test_empty_png_over_tus_is_refused_with_an_allow_list(tus, settings):
    settings.FILE_UPLOAD_ALLOWED_TYPES = ["image/png"]
    response = tus.request(
        "POST", headers={"Upload-Length": "0", "Upload-Metadata": metadata(filename="a.png")}
    )
    assert response.status_code == 415, response.text
    assert not UploadFile.objects.filter(status=UploadFile.Status.STORED).exists()


def test_concatenation_of_partial_uploads(tus, settings):
    first = tus.create(5, **{"Upload-Concat": "partial"})
    second = tus.create(6, **{"Upload-Concat": "partial"})
    assert tus.head(first).headers["Upload-Concat"] == "partial"
    assert tus.patch(second, b" world", 0).status_code == 204
    # Not yet complete: a final upload is refused and nothing changes.
    early = tus.request("POST", headers={"Upload-Concat": f"final;{first} {second}"})
    assert early.status_code == 400
    assert tus.patch(first, b"hello", 0).status_code == 204
    assert UploadFile.objects.count() == 0  # partials are never files on their own

    relative = urlsplit(second).path
    final = tus.request(
        "POST",
        headers={
            "Upload-Concat": f"final;{first} {relative}",
            "Upload-Metadata": metadata(filename="hw.txt"),
        },
    )
    assert final.status_code == 201
    final_url = final.headers["Location"]
    head = tus.head(final_url)
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == "11"
    assert head.headers["Upload-Concat"] == f"final;{urlsplit(first).path} {relative}"
    file = session_for(final_url).file
    assert file.sha256 == hashlib.sha256(b"hello world").hexdigest()
    assert file.filename == "hw.txt"
    assert UploadFile.objects.count() == 1
    forbidden = tus.patch(final_url, b"x", 11)
    assert forbidden.status_code == 403
    assert forbidden.headers["Tus-Resumable"] == "1.0.0"
    assert forbidden.json()["error"]["code"] == "final_upload"
    assert part_objects(settings) == []


def test_a_partial_may_appear_twice_in_one_final_upload(tus, settings):
    first = tus.create(3, **{"Upload-Concat": "partial"})
    second = tus.create(1, **{"Upload-Concat": "partial"})
    assert tus.patch(first, b"abc", 0).status_code == 204
    assert tus.patch(second, b"-", 0).status_code == 204
    final = tus.request("POST", headers={"Upload-Concat": f"final;{first} {second} {first}"})
    assert final.status_code == 201, final.text
    head = tus.head(final.headers["Location"])
    assert head.headers["Upload-Length"] == head.headers["Upload-Offset"] == "7"
    file = session_for(final.headers["Location"]).file
    assert file.size == 7 and file.sha256 == hashlib.sha256(b"abc-abc").hexdigest()
    assert part_objects(settings) == []


@pytest.mark.parametrize("offset", [0, 3, 4])
def test_patch_on_a_final_upload_is_403_whatever_the_offset(tus, offset):
    first = tus.create(3, **{"Upload-Concat": "partial"})
    tus.patch(first, b"abc", 0)
    final = tus.request("POST", headers={"Upload-Concat": f"final;{first}"}).headers["Location"]
    response = tus.patch(final, b"x", offset)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "final_upload"


def test_long_filename_in_metadata_is_cut_to_255(tus):
    url = tus.create(3, **{"Upload-Metadata": metadata(filename="n" * 5000 + ".txt")})
    tus.patch(url, b"abc", 0)
    assert session_for(url).file.filename == "n" * 251 + ".txt"


def test_final_upload_of_someone_elses_partial_is_refused(live_server, tus, intruder):
    other = Tus(live_server.url, raw_token(intruder))
    theirs = other.create(3, **{"Upload-Concat": "partial"})
    other.patch(theirs, b"abc", 0)
    response = tus.request("POST", headers={"Upload-Concat": f"final;{theirs}"})
    assert response.status_code == 400
    assert UploadFile.objects.count() == 0


def test_body_is_streamed_not_read_into_memory(tus, settings):
    """A PATCH far above DATA_UPLOAD_MAX_MEMORY_SIZE works (request.body would refuse it)."""
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 2621440
    data = os.urandom(3 * 1024 * 1024 + 17)
    url = tus.create(len(data))
    response = tus.patch(url, data, 0)
    assert response.status_code == 204
    assert session_for(url).file.sha256 == hashlib.sha256(data).hexdigest()


def test_method_not_allowed(tus):
    response = tus.request("GET")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    url = tus.create(3)
    assert tus.request("POST", url).status_code == 405


def test_each_patch_saves_the_hash_so_far_and_the_last_one_reads_nothing_back(tus, monkeypatch):
    """Any process continues the hash from the session's row: none re-reads the file."""
    from portal.services.tus import sha256_state
    from portal.services.tus.parts import PartStore

    url = tus.create(10)
    assert tus.patch(url, b"01234", 0).status_code == 204
    saved = session_for(url).sha256_state
    expected = hashlib.sha256(b"01234").hexdigest()
    assert sha256_state.ResumableSha256.from_state(bytes(saved)).hexdigest() == expected

    def no_reading(*args, **kwargs):
        raise AssertionError("the parts were read back to hash them")

    monkeypatch.setattr(PartStore, "_reading", no_reading)
    assert tus.patch(url, b"56789", 5).status_code == 204
    assert session_for(url).file.sha256 == hashlib.sha256(b"0123456789").hexdigest()


def test_without_a_saved_hash_finalisation_reads_the_parts(tus):
    """An upload whose state is missing (saved before this existed) still gets its hash."""
    url = tus.create(10)
    assert tus.patch(url, b"01234", 0).status_code == 204
    UploadSession.objects.filter(id=url.rsplit("/", 1)[1]).update(sha256_state=None)
    assert tus.patch(url, b"56789", 5).status_code == 204
    assert session_for(url).file.sha256 == hashlib.sha256(b"0123456789").hexdigest()


def test_browser_session_needs_the_csrf_token(live_server, owner):
    """The UI uses the login session on the same endpoint; CSRF applies."""
    from django.conf import settings as django_settings
    from django.test import Client

    browser = Client()
    browser.force_login(owner)
    cookies = {
        django_settings.SESSION_COOKIE_NAME: browser.cookies[
            django_settings.SESSION_COOKIE_NAME
        ].value
    }
    http = httpx.Client(cookies=cookies)
    base = live_server.url + "/api/tus/"
    refused = http.post(base, headers={**TUS, "Upload-Length": "3"})
    assert refused.status_code == 401
    assert UploadSession.objects.count() == 0

    csrf = "a" * 32
    http.cookies.set(django_settings.CSRF_COOKIE_NAME, csrf)
    created = http.post(base, headers={**TUS, "Upload-Length": "3", "X-CSRFToken": csrf})
    assert created.status_code == 201
    assert session_for(created.headers["Location"]).owner == owner


def test_admin_lists_and_shows_upload_sessions(tus, admin_client, settings):
    url = tus.create(10)
    tus.patch(url, b"01234", 0)
    session = session_for(url)
    assert admin_client.get("/admin/portal/uploadsession/").status_code == 200
    page = admin_client.get(f"/admin/portal/uploadsession/{session.id}/change/")
    assert page.status_code == 200
    assert session.parts.get().storage_key.encode() in page.content


def test_empty_upload_is_stored_at_creation(tus):
    url = tus.create(0, **{"Upload-Metadata": metadata(filename="empty.txt")})
    head = tus.head(url)
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == "0"
    assert "Upload-Expires" not in head.headers
    file = session_for(url).file
    assert (file.status, file.size) == (UploadFile.Status.STORED, 0)
    assert file.sha256 == hashlib.sha256(b"").hexdigest()


def test_sweep_removes_objects_no_part_records(tus, settings):
    """A process that died between writing a part and recording it leaves an orphan."""

    from django.core.files.base import ContentFile
    from django.utils import timezone

    from portal.services.tus.expiry import upload_sessions_expire
    from portal.storage import file_storage

    url = tus.create(10)
    tus.patch(url, b"01234", 0)
    session = session_for(url)
    file_storage().save(f"tus/{session.id}/orphan", ContentFile(b"56789"))
    assert len(part_objects(settings)) == 2
    UploadSession.objects.filter(id=session.id).update(expires_at=timezone.now())
    assert upload_sessions_expire().expired == 1
    assert part_objects(settings) == []
    assert not (Path(settings.MEDIA_ROOT) / "tus" / str(session.id)).exists()


def test_bytes_past_the_recorded_offset_are_cut_off(tus, settings):
    """A request that died after writing but before recording leaves junk; it is dropped."""
    url = tus.create(10)
    assert tus.patch(url, b"01234", 0).status_code == 204
    data_file = Path(settings.MEDIA_ROOT) / "tus" / str(session_for(url).id) / "data"
    with data_file.open("ab") as fh:
        fh.write(b"JUNKJUNK")
    assert tus.head(url).headers["Upload-Offset"] == "5"
    assert tus.patch(url, b"56789", 5).status_code == 204
    file = session_for(url).file
    assert file.sha256 == hashlib.sha256(b"0123456789").hexdigest()
    assert (Path(settings.MEDIA_ROOT) / file.storage_key).read_bytes() == b"0123456789"


def test_chunked_body_without_content_length_is_411(tus):
    url = tus.create(10)
    parsed = urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    headers = {**TUS, **tus.auth, **OCTET, "Upload-Offset": "0", "Transfer-Encoding": "chunked"}
    conn.request("PATCH", parsed.path, body=iter([b"01234"]), headers=headers)
    response = conn.getresponse()
    conn.close()
    assert response.status == 411
    assert response.getheader("Tus-Resumable") == "1.0.0"
    assert session_for(url).offset == 0


def _break_file_recording(monkeypatch) -> None:
    """The database goes away after the last PATCH is recorded, as the file is."""
    from django.db import OperationalError

    from portal.services.tus import finalise

    def unreachable(**kwargs):
        raise OperationalError("the database went away")

    monkeypatch.setattr(finalise, "upload_file_record_stored", unreachable)


def test_head_finishes_an_upload_whose_finalisation_broke_off(tus, monkeypatch, settings):
    """The client's retry asks HEAD, learns every byte is in, and stops: HEAD finishes it."""
    url = tus.create(10)
    _break_file_recording(monkeypatch)
    assert tus.patch(url, b"0123456789", 0).status_code == 503
    monkeypatch.undo()
    session = session_for(url)
    assert (session.status, session.offset, session.file) == ("active", 10, None)

    head = tus.head(url)

    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == "10"
    file = session_for(url).file
    assert file.status == "stored"
    assert file.sha256 == hashlib.sha256(b"0123456789").hexdigest()
    assert (Path(settings.MEDIA_ROOT) / file.storage_key).read_bytes() == b"0123456789"
    assert part_objects(settings) == []


def test_the_sweep_finishes_rather_than_expires_a_fully_received_upload(tus, monkeypatch):
    from portal.services.tus.expiry import upload_sessions_expire

    url = tus.create(10)
    _break_file_recording(monkeypatch)
    assert tus.patch(url, b"0123456789", 0).status_code == 503
    monkeypatch.undo()

    upload_sessions_expire(now=timezone.now() + timedelta(days=30))

    session = session_for(url)
    assert session.status == "complete"
    assert session.file.sha256 == hashlib.sha256(b"0123456789").hexdigest()


def test_a_patch_that_does_not_complete_the_upload_costs_at_most_four_queries(
    owner, django_assert_max_num_queries
):
    """Counted in this thread (the test client), where every query is seen."""
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_token(owner)}", HTTP_TUS_RESUMABLE="1.0.0")
    created = client.generic("POST", "/api/tus/", b"", HTTP_UPLOAD_LENGTH="10")
    assert created.status_code == 201
    path = urlsplit(created["Location"]).path

    def patch(data: bytes, offset: int):
        return client.generic(
            "PATCH",
            path,
            data,
            content_type="application/offset+octet-stream",
            HTTP_UPLOAD_OFFSET=str(offset),
        )

    assert patch(b"012", 0).status_code == 204
    with django_assert_max_num_queries(4):
        assert patch(b"345", 3).status_code == 204

    # The record's asynchronous commit is its own: the connection (pooled,
    # reused by other requests) still commits synchronously.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("on",)
    assert patch(b"6789", 6).status_code == 204
    assert session_for(path).status == "complete"
