from __future__ import annotations

import hashlib
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from api.tests.conftest import assert_error
from common.models import OutboxEvent
from portal.models import UploadBatch, UploadFile
from portal.services.batches import batch_create

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100


def upload(client, data: bytes = b"hello world\n", name: str = "hello.txt", **fields):
    return client.post(
        "/api/files", {"file": SimpleUploadedFile(name, data, "text/plain"), **fields}
    )


def test_upload_detail_list_download_delete(api, user, client):
    data = b"some bytes\n" * 1000
    response = upload(api, data, "report.txt", metadata=json.dumps({"k": "v"}))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "stored"
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["size"] == len(data)
    assert body["filename"] == "report.txt"
    assert body["metadata"] == {"k": "v"}
    assert body["owner_id"] == str(user.id)
    assert (
        OutboxEvent.objects.filter(event_type="file.stored", aggregate_id=body["id"]).count() == 1
    )

    assert api.get(f"/api/files/{body['id']}").json()["sha256"] == body["sha256"]
    listing = api.get("/api/files").json()
    assert listing["count"] == 1 and listing["items"][0]["id"] == body["id"]

    response = api.get(f"/api/files/{body['id']}/download")
    assert response.status_code == 302
    fetched = client.get(response["Location"])
    assert fetched.status_code == 200
    assert b"".join(fetched.streaming_content) == data

    assert api.delete(f"/api/files/{body['id']}").status_code == 204
    assert not UploadFile.objects.filter(pk=body["id"]).exists()
    assert_error(api.get(f"/api/files/{body['id']}"), 404, "not_found")


def test_without_token_401(anon, api):
    file_id = upload(api).json()["id"]
    for method, path in [
        ("get", "/api/files"),
        ("get", f"/api/files/{file_id}"),
        ("get", f"/api/files/{file_id}/download"),
        ("delete", f"/api/files/{file_id}"),
        ("post", "/api/batches"),
    ]:
        assert_error(getattr(anon, method)(path), 401, "not_authenticated")
    assert_error(upload(anon), 401)
    assert UploadFile.objects.count() == 1


def test_other_users_file_is_404(api, other_api):
    file_id = upload(api).json()["id"]
    assert_error(other_api.get(f"/api/files/{file_id}"), 404)
    assert_error(other_api.get(f"/api/files/{file_id}/download"), 404)
    assert_error(other_api.delete(f"/api/files/{file_id}"), 404)
    assert other_api.get("/api/files").json()["count"] == 0
    assert UploadFile.objects.filter(pk=file_id).exists()


def test_staff_sees_all(api, staff_api):
    file_id = upload(api).json()["id"]
    assert staff_api.get(f"/api/files/{file_id}").status_code == 200
    assert staff_api.get("/api/files").json()["count"] == 1


def test_filters_and_pagination(api):
    batch = api.post("/api/batches", {}, content_type="application/json").json()
    ids = [upload(api, f"file {i}".encode(), f"doc-{i}.txt").json()["id"] for i in range(3)]
    in_batch = upload(api, PNG, "pic.png", batch_id=batch["id"]).json()
    assert in_batch["content_type"] == "image/png"

    page = api.get("/api/files?limit=2").json()
    assert page["count"] == 4 and len(page["items"]) == 2
    assert page["items"][0]["id"] == in_batch["id"]  # newest first
    rest = api.get("/api/files?limit=2&offset=2").json()["items"]
    assert [f["id"] for f in rest] == [ids[1], ids[0]]

    assert api.get("/api/files?q=DOC-1").json()["count"] == 1
    assert api.get("/api/files?content_type=image/").json()["count"] == 1
    assert api.get("/api/files?content_type=text/plain").json()["count"] == 3
    assert api.get(f"/api/files?batch_id={batch['id']}").json()["count"] == 1
    assert api.get("/api/files?status=failed").json()["count"] == 0
    assert api.get("/api/files?created_after=2999-01-01T00:00:00Z").json()["count"] == 0
    for bad in ("status=nope", "batch_id=nope", "created_after=yesterday", "q=%00"):
        assert_error(api.get(f"/api/files?{bad}"), 400, "validation_error")


def test_list_has_no_n_plus_one(api, django_assert_max_num_queries):
    for i in range(5):
        upload(api, f"{i}".encode(), f"{i}.txt")
    # auth (token lookup + last-use write) + count + page
    with django_assert_max_num_queries(5):
        assert api.get("/api/files").json()["count"] == 5


def test_upload_too_large_413(api, settings):
    settings.FILE_UPLOAD_MAX_SIZE = 1000
    response = upload(api, b"x" * 1001)
    error = assert_error(response, 413, "payload_too_large")
    assert error["details"]["max_size"] == 1000
    assert not UploadFile.objects.filter(status="stored").exists()


def test_too_large_names_the_limit_in_iec_units_and_bytes(api, settings):
    settings.FILE_UPLOAD_MAX_SIZE = 2048
    error = assert_error(upload(api, b"x" * 2049), 413, "payload_too_large")
    assert error["message"] == "The file is larger than the limit of 2 KiB (2 048 bytes)."
    # Refused on its Content-Length alone: the same words.
    error = assert_error(upload(api, b"x" * 200_000), 413, "payload_too_large")
    assert error["message"] == "The file is larger than the limit of 2 KiB (2 048 bytes)."


def test_upload_rejected_early_on_content_length(api, settings):
    settings.FILE_UPLOAD_MAX_SIZE = 1000
    response = upload(api, b"x" * 200_000)
    assert_error(response, 413, "payload_too_large")
    # Refused before the body was parsed: not even a failed record.
    assert not UploadFile.objects.exists()


def test_upload_type_not_allowed_415(api, settings):
    settings.FILE_UPLOAD_ALLOWED_TYPES = ["image/png"]
    assert_error(upload(api, b"plain text", "a.txt"), 415, "unsupported_media_type")
    assert upload(api, PNG, "a.png").status_code == 201
    assert UploadFile.objects.filter(status="stored").count() == 1


@pytest.mark.parametrize(
    ("data", "name", "declared"),
    [
        (b"<?php system($_GET['c']); ?>", "a.png", "image/png"),
        (b"plain text", "a.png", "text/plain"),
        (b"plain text", "upload", "image/png"),
        (b"", "a.png", "image/png"),
    ],
)
def test_allow_list_refuses_content_that_is_not_an_allowed_type(
    api, settings, data, name, declared
):
    settings.FILE_UPLOAD_ALLOWED_TYPES = ["image/png", "image/jpeg", "application/pdf"]
    response = api.post("/api/files", {"file": SimpleUploadedFile(name, data, declared)})
    error = assert_error(response, 415, "unsupported_media_type")
    failed = UploadFile.objects.get(pk=error["details"]["file_id"])
    assert failed.status == "failed" and failed.storage_key == ""
    assert not UploadFile.objects.filter(status="stored").exists()


@pytest.mark.parametrize(
    "fields",
    [
        {"metadata": "not json"},
        {"metadata": "[1, 2]"},
        {"metadata": '{"a": "\\u0000"}'},
        {"batch_id": "not-a-uuid"},
        {"batch_id": ""},
    ],
)
def test_upload_bad_fields_400_and_nothing_stored(api, fields):
    assert_error(upload(api, **fields), 400)
    assert not UploadFile.objects.exists()


def test_upload_missing_file_400(api):
    assert_error(api.post("/api/files", {"metadata": "{}"}), 400, "validation_error")
    assert_error(api.post("/api/files", b"{}", content_type="application/json"), 415)


def test_upload_into_other_users_batch_404(api, other_user):
    batch = batch_create(owner=other_user)
    assert_error(upload(api, batch_id=str(batch.id)), 404)
    assert not UploadFile.objects.exists()


def test_download_failed_file_409(api, settings):
    settings.FILE_UPLOAD_MAX_SIZE = 10
    error = assert_error(upload(api, b"x" * 11), 413)
    failed_id = error["details"]["file_id"]
    assert api.get(f"/api/files/{failed_id}").json()["status"] == "failed"
    assert_error(api.get(f"/api/files/{failed_id}/download"), 409, "file_not_stored")


def test_batches_flow(api, other_api):
    response = api.post(
        "/api/batches",
        {"expected_files": 2, "idempotency_key": "k1", "metadata": {"job": 7}},
        content_type="application/json",
    )
    assert response.status_code == 201
    batch = response.json()
    assert batch["status"] == "init" and batch["progress"] == 0
    again = api.post(
        "/api/batches",
        {"expected_files": 2, "idempotency_key": "k1"},
        content_type="application/json",
    ).json()
    assert again["id"] == batch["id"]

    upload(api, b"one", "1.txt", batch_id=batch["id"])
    detail = api.get(f"/api/batches/{batch['id']}").json()
    assert detail["status"] == "in_progress" and detail["progress"] == 0.5
    upload(api, b"two", "2.txt", batch_id=batch["id"])
    detail = api.get(f"/api/batches/{batch['id']}").json()
    assert detail["status"] == "complete" and detail["progress"] == 1
    assert OutboxEvent.objects.filter(event_type="batch.completed").count() == 1

    files = api.get(f"/api/batches/{batch['id']}/files").json()
    assert files["count"] == 2
    assert api.get("/api/batches").json()["count"] == 1
    assert_error(upload(api, b"three", "3.txt", batch_id=batch["id"]), 409)

    assert_error(other_api.get(f"/api/batches/{batch['id']}"), 404)
    assert_error(other_api.get(f"/api/batches/{batch['id']}/files"), 404)
    assert_error(other_api.post(f"/api/batches/{batch['id']}/close"), 404)
    assert other_api.get("/api/batches").json()["count"] == 0


def test_batch_close(api):
    batch = api.post("/api/batches", {}, content_type="application/json").json()
    assert batch["progress"] is None
    upload(api, b"one", "1.txt", batch_id=batch["id"])
    closed = api.post(f"/api/batches/{batch['id']}/close").json()
    assert closed["status"] == "complete" and closed["expected_files"] == 1
    assert closed["files_missing"] == 0


def test_batch_closed_early_keeps_expected_files(api):
    """#23.1: 1 of 3 files came; the API says so."""
    batch = api.post("/api/batches", {"expected_files": 3}, content_type="application/json")
    batch = batch.json()
    upload(api, b"one", "1.txt", batch_id=batch["id"])
    closed = api.post(f"/api/batches/{batch['id']}/close").json()
    assert closed["status"] == "incomplete"
    assert (closed["expected_files"], closed["files_ended"], closed["files_missing"]) == (3, 1, 2)
    assert closed["progress"] == pytest.approx(1 / 3)
    listed = api.get("/api/batches?status=incomplete").json()
    assert [b["id"] for b in listed["items"]] == [batch["id"]]


def test_empty_batch_closed_is_empty_with_no_progress(api):
    batch = api.post("/api/batches", {}, content_type="application/json").json()
    closed = api.post(f"/api/batches/{batch['id']}/close").json()
    assert closed["status"] == "empty" and closed["progress"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"expected_files": 0},
        {"expected_files": 10**9},
        {"expected_files": "many"},
        {"idempotency_key": ""},
        {"idempotency_key": "a\x00b"},
        {"metadata": [1]},
        {"metadata": {"a": "\x00"}},
    ],
)
def test_batch_create_bad_input(api, body):
    assert_error(api.post("/api/batches", body, content_type="application/json"), 400)
    assert not UploadBatch.objects.exists()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_json_body_with_another_content_type_is_415(api, content_type):
    response = api.post("/api/batches", b'{"expected_files": 1}', content_type=content_type)
    error = assert_error(response, 415, "json_required")
    assert error["details"]["content_type"] == content_type
    assert not UploadBatch.objects.exists()


def test_json_body_types_that_are_json_are_accepted(api):
    for content_type in ("application/json", "application/json; charset=utf-8"):
        response = api.post("/api/batches", b"{}", content_type=content_type)
        assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("x" * 10_000 + ".pdf", "x" * 251 + ".pdf"),
        ("y" * 10_000, "y" * 255),
    ],
)
def test_very_long_filename_is_cut_to_255_keeping_the_extension(api, name, kept):
    response = upload(api, b"%PDF-1.4\n", name)
    assert response.status_code == 201, response.content
    assert response.json()["filename"] == kept
