"""The upload page: limits and Uppy's settings, the plain form without JavaScript."""

from __future__ import annotations

import base64
import hashlib
import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from api.tus.headers import parse_metadata
from common.exceptions import ApplicationError
from frontend.tests.helpers import make_batch, make_file
from portal.models import UploadBatch, UploadFile, UploadSession
from portal.services.batches import batch_close
from portal.services.tus.append import upload_session_append
from portal.services.tus.sessions import upload_session_create, upload_session_terminate

pytestmark = pytest.mark.django_db


def attr(page, name: str) -> str | None:
    match = re.search(rf'{name}="([^"]*)"', page.content.decode())
    return match.group(1) if match else None


@pytest.mark.parametrize(
    "path",
    [
        "/upload/",
        "/upload/simple/",
        "/upload/done/00000000-0000-0000-0000-000000000001/",
        "/upload/status/00000000-0000-0000-0000-000000000001/",
    ],
)
def test_anonymous_visitors_are_sent_to_sign_in(anon, path):
    page = anon.get(path)
    assert page.status_code == 302
    assert page["Location"].startswith("/login/?next=")


def test_page_shows_limits_and_configures_uppy(client_user, settings):
    settings.RESUMABLE_UPLOAD_MAX_SIZE = 2 * 1024**3
    settings.FILE_UPLOAD_MAX_SIZE = 10 * 1024**2
    settings.FILE_UPLOAD_ALLOWED_TYPES = ["image/*", "application/pdf"]
    settings.FILE_UPLOAD_TTL_HOURS = 48
    page = client_user.get("/upload/")
    assert page.status_code == 200
    body = page.content.decode()
    # IEC units, as the limits are: not "2.0 GB" for 2 GiB.
    assert "2\xa0GiB" in body
    assert "10\xa0MiB" in body
    assert "image/*, application/pdf" in body
    assert "48 h after upload" in body
    assert attr(page, "data-max-size") == str(2 * 1024**3)
    assert attr(page, "data-allowed-types") == "image/*,application/pdf"
    assert attr(page, "data-endpoint") == "/api/tus/"
    assert attr(page, "data-chunk-size") == str(50 * 1024 * 1024)
    assert "data-parallel" not in body  # one tus upload per file, never concatenated
    assert attr(page, "data-status-url") == "/upload/status/00000000-0000-0000-0000-000000000000/"
    assert attr(page, "data-csrf-token")
    # Uppy only on this page; no inline script or style (CSP).
    assert "vendor/uppy/uppy.min.js" in body
    assert "vendor/uppy/uppy.min.css" in body
    assert "js/upload.js" in body
    assert "<script>" not in body
    assert "style=" not in body
    # The uploader waits for its script; the plain form works without it.
    assert re.search(
        r"<section[^>]*data-uploader[^>]*hidden|<section[^>]*hidden[^>]*data-uploader", body
    )
    assert 'action="/upload/simple/"' in body
    assert 'enctype="multipart/form-data"' in body
    assert '<label for="id_file">File</label>' in body


@pytest.mark.parametrize("allowed", [None, [], ["*/*"]])
def test_any_type_when_no_list_is_set(client_user, settings, allowed):
    settings.FILE_UPLOAD_ALLOWED_TYPES = allowed
    page = client_user.get("/upload/")
    assert attr(page, "data-allowed-types") == ""
    assert "<dd>any</dd>" in page.content.decode()
    assert "Uppy" not in client_user.get("/files/").content.decode()
    assert "uppy.min.js" not in client_user.get("/files/").content.decode()


def test_upload_into_an_open_batch(client_user, user):
    batch = make_batch(user, "Scans")
    page = client_user.get(f"/upload/?batch={batch.id}")
    assert attr(page, "data-batch-id") == str(batch.id)
    assert f'href="/batches/{batch.id}/"' in page.content.decode()
    assert b"Scans" in page.content


@pytest.mark.parametrize("which", ["closed", "others", "garbage"])
def test_a_batch_that_is_not_open_and_yours_is_ignored(client_user, user, other_user, which):
    if which == "closed":
        batch = make_batch(user)
        batch_close(batch=batch, actor=user)
        value = str(batch.id)
    elif which == "others":
        value = str(make_batch(other_user).id)
    else:
        value = "nope"
    page = client_user.get(f"/upload/?batch={value}")
    assert page.status_code == 200
    assert attr(page, "data-batch-id") is None
    assert b"not one of your open batches" in page.content


def test_simple_upload_stores_the_file(client_user, user):
    data = b"plain form upload\n" * 100
    upload = SimpleUploadedFile("notes.txt", data, content_type="text/plain")
    response = client_user.post_form("/upload/simple/", {"file": upload}, page="/upload/")
    file = UploadFile.objects.get(owner=user)
    assert response.status_code == 302
    assert response["Location"] == f"/files/{file.id}/"
    assert file.status == UploadFile.Status.STORED
    assert file.sha256 == hashlib.sha256(data).hexdigest()
    assert file.size == len(data)
    assert file.filename == "notes.txt"
    assert b"notes.txt was uploaded and stored" in client_user.get(response["Location"]).content


def test_simple_upload_into_a_batch(client_user, user):
    batch = make_batch(user)
    upload = SimpleUploadedFile("a.txt", b"abc")
    response = client_user.post_form(
        "/upload/simple/", {"file": upload, "batch": str(batch.id)}, page="/upload/"
    )
    assert response.status_code == 302
    assert UploadFile.objects.get().batch_id == batch.id
    batch.refresh_from_db()
    assert batch.files_stored == 1


def test_simple_upload_refuses_someone_elses_batch(client_user, user, other_user):
    batch = make_batch(other_user)
    upload = SimpleUploadedFile("a.txt", b"abc")
    response = client_user.post_form(
        "/upload/simple/", {"file": upload, "batch": str(batch.id)}, page="/upload/"
    )
    assert response.status_code == 400
    assert b"Select a valid choice" in response.content
    assert not UploadFile.objects.exists()


def test_refused_simple_upload_shows_the_message_and_stores_nothing(client_user, user, settings):
    settings.FILE_UPLOAD_MAX_SIZE = 100
    upload = SimpleUploadedFile("big.txt", b"x" * 500)
    response = client_user.post_form("/upload/simple/", {"file": upload}, page="/upload/")
    assert response.status_code == 400
    assert b"The file is larger than the limit of 100 bytes." in response.content
    assert b"big.txt was not stored" in response.content
    assert not UploadFile.objects.filter(status=UploadFile.Status.STORED).exists()
    # The failed record keeps no bytes.
    assert UploadFile.objects.get().storage_key == ""


def test_refused_type_shows_the_message(client_user, settings):
    settings.FILE_UPLOAD_ALLOWED_TYPES = ["image/png"]
    upload = SimpleUploadedFile("notes.txt", b"just text")
    response = client_user.post_form("/upload/simple/", {"file": upload}, page="/upload/")
    assert response.status_code == 400
    assert b"Files of type text/plain are not accepted." in response.content
    assert not UploadFile.objects.filter(status=UploadFile.Status.STORED).exists()


def test_simple_upload_without_a_file_is_shown_on_the_form(client_user):
    response = client_user.post_form("/upload/simple/", {}, page="/upload/")
    assert response.status_code == 400
    assert b"This field is required." in response.content
    assert not UploadFile.objects.exists()


def test_simple_upload_without_csrf_token_is_refused(client_user):
    upload = SimpleUploadedFile("a.txt", b"abc")
    response = client_user.post("/upload/simple/", {"file": upload})
    assert response.status_code == 403
    assert not UploadFile.objects.exists()


def test_upload_result_leads_to_the_file_of_a_finished_tus_upload(client_user, client_other, user):
    data = b"resumable bytes"
    metadata = parse_metadata("filename " + base64.b64encode(b"r.txt").decode())
    session = upload_session_create(owner=user, length=len(data), metadata=metadata)
    session = upload_session_append(
        owner=user,
        upload_id=session.id,
        offset=0,
        stream=io.BytesIO(data),
        content_length=len(data),
    )
    file = UploadFile.objects.get(upload_session=session)
    response = client_user.get(f"/upload/done/{session.id}/")
    assert response.status_code == 302
    assert response["Location"] == f"/files/{file.id}/"
    assert client_other.get(f"/upload/done/{session.id}/").status_code == 404


def _tus_session(owner, data: bytes = b"resumable bytes", **kwargs):
    metadata = parse_metadata("filename " + base64.b64encode(b"r.txt").decode())
    return upload_session_create(owner=owner, length=len(data), metadata=metadata, **kwargs)


def _status(client, session_id) -> dict:
    response = client.get(f"/upload/status/{session_id}/")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    return response.json()


def test_upload_status_of_a_stored_upload_names_its_file(client_user, client_other, user):
    data = b"resumable bytes"
    session = _tus_session(user, data)
    upload_session_append(
        owner=user, upload_id=session.id, offset=0, stream=io.BytesIO(data), content_length=15
    )
    file = UploadFile.objects.get(upload_session=session)
    assert _status(client_user, session.id) == {"state": "stored", "file_url": f"/files/{file.id}/"}
    # Someone else's upload is no upload at all.
    other = client_other.get(f"/upload/status/{session.id}/")
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "not_found"


def test_upload_status_of_an_upload_whose_file_was_deleted_since(client_user, user):
    from portal.services.file_records import upload_file_delete

    data = b"resumable bytes"
    session = _tus_session(user, data)
    upload_session_append(
        owner=user, upload_id=session.id, offset=0, stream=io.BytesIO(data), content_length=15
    )
    upload_file_delete(file=UploadFile.objects.get(upload_session=session), actor=user)
    assert _status(client_user, session.id) == {"state": "deleted"}


def test_upload_status_of_an_upload_still_receiving(client_user, user):
    session = _tus_session(user)
    assert _status(client_user, session.id) == {"state": "receiving", "offset": 0, "length": 15}


def test_upload_status_while_another_request_finishes_the_upload(client_user, user):
    """Every byte is in and the request that took the last one holds the upload: finishing."""
    from portal.services.tus.locks import upload_session_lock

    session = _tus_session(user)
    UploadSession.objects.filter(pk=session.pk).update(offset=15)
    with upload_session_lock(session.id):
        assert _status(client_user, session.id) == {"state": "finishing"}


def test_upload_status_of_a_refused_upload_gives_the_reason(client_user, user, settings):
    settings.FILE_UPLOAD_ALLOWED_TYPES = ["image/png"]
    session = _tus_session(user, b"#!/bin/sh\nls")
    with pytest.raises(ApplicationError):
        upload_session_append(
            owner=user, upload_id=session.id, offset=0, stream=io.BytesIO(b"#!/bin/sh\nls"),
            content_length=12,
        )  # fmt: skip
    state = _status(client_user, session.id)
    assert state["state"] == "failed"
    assert "not accepted" in state["message"]


def test_upload_status_of_a_terminated_upload_is_gone(client_user, user):
    session = _tus_session(user)
    upload_session_terminate(owner=user, upload_id=session.id)
    assert _status(client_user, session.id) == {"state": "gone"}


def test_upload_status_of_a_partial_upload_is_never_a_file(client_user, user):
    session = _tus_session(user, partial=True)
    assert _status(client_user, session.id) == {"state": "partial", "offset": 0, "length": 15}


def test_upload_page_query_count(client_user, user, django_assert_max_num_queries):
    batch = make_batch(user)
    for _ in range(5):
        make_batch(user)
    make_file(user)
    with django_assert_max_num_queries(10):
        assert client_user.get(f"/upload/?batch={batch.id}").status_code == 200
    assert UploadBatch.objects.count() == 6
