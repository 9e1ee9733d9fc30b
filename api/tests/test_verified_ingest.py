"""Scanning with a real clamd (private socket, EICAR signature of our own):
every upload path waits in ``scanning``, a clean file is stored, an infected
one is quarantined and can be downloaded by nobody, a scanner that is away
holds files (closed) or lets them through marked (open)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from api.tests.conftest import assert_error
from api.tests.tus_helpers import metadata, session_for
from common.models import OutboxEvent
from conftest import PASSWORD
from portal.models import UploadFile
from portal.services.batches import batch_create
from portal.services.verification import verify_file, verify_held_files
from portal.storage import file_download_url, file_storage
from scripts.private_clamd import EICAR, SIGNATURE

pytestmark = pytest.mark.processes  # a clamd per module


def upload(client, data: bytes, name: str = "hello.txt", **fields):
    return client.post(
        "/api/files", {"file": SimpleUploadedFile(name, data, "text/plain"), **fields}
    )


def events(file_id, event_type: str) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(aggregate_id=file_id, event_type=event_type))


@pytest.mark.django_db
def test_clean_simple_upload_waits_in_scanning_then_is_stored(api, clamd, client):
    data = b"an honest report\n" * 1000
    response = upload(api, data, "report.txt")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "scanning"
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    # Nothing announced and nothing downloadable before the verdict.
    assert events(body["id"], "file.stored") == []
    assert_error(api.get(f"/api/files/{body['id']}/download"), 409, "file_not_stored")

    assert verify_file(body["id"]).status == "stored"
    file = UploadFile.objects.get(pk=body["id"])
    assert file.status == UploadFile.Status.STORED
    assert file.scan_result == UploadFile.Scan.CLEAN and file.scanned_at is not None
    [stored] = events(file.id, "file.stored")
    assert stored.payload["file"]["scan_result"] == "clean"
    assert stored.payload["file"]["download_url"]
    location = api.get(f"/api/files/{file.id}/download")["Location"]
    assert b"".join(client.get(location).streaming_content) == data
    # A second verification of the same file does nothing.
    assert verify_file(file.id).status == "not_due"


@pytest.mark.django_db
def test_infected_simple_upload_is_quarantined_never_stored_never_downloadable(
    api, staff_api, user, clamd, client
):
    batch = batch_create(owner=user, expected_files=1)
    body = upload(api, EICAR, "invoice.pdf.exe", batch_id=str(batch.id)).json()
    outcome = verify_file(body["id"])
    assert outcome.status == "quarantined"

    file = UploadFile.objects.get(pk=body["id"])
    assert file.status == UploadFile.Status.QUARANTINED
    assert file.scan_signature == SIGNATURE
    assert SIGNATURE in file.error_message
    assert file_storage().exists(file.storage_key)  # kept for staff
    assert events(file.id, "file.stored") == []
    [quarantined] = events(file.id, "file.quarantined")
    assert quarantined.payload["signature"] == SIGNATURE
    assert quarantined.payload["file"]["download_url"] is None
    assert quarantined.payload["file"]["status"] == "quarantined"
    batch.refresh_from_db()
    assert (batch.files_stored, batch.files_failed) == (0, 1)

    # No download anywhere: API, the signed link, the portal.
    assert_error(api.get(f"/api/files/{file.id}/download"), 409, "file_not_stored")
    assert_error(staff_api.get(f"/api/files/{file.id}/download"), 409, "file_not_stored")
    assert client.get(file_download_url(file)).status_code == 404
    assert client.get(file_download_url(file, pre_store=True)).status_code == 404
    client.login(username=user.email, password=PASSWORD)
    page = client.get(f"/files/{file.id}/")
    assert page.status_code == 200
    assert b"Quarantined" in page.content and SIGNATURE.encode() in page.content
    assert b'id="download"' not in page.content
    assert client.get(f"/files/{file.id}/download/").status_code == 302  # back, with a message
    assert api.get("/api/files?status=quarantined").json()["count"] == 1

    # Staff see it (the owner's name shown) and delete it; no file.deleted.
    listing = staff_api.get("/api/files?status=quarantined").json()
    assert [item["id"] for item in listing["items"]] == [str(file.id)]
    assert listing["items"][0]["scan_signature"] == SIGNATURE
    assert staff_api.delete(f"/api/files/{file.id}").status_code == 204
    assert not file_storage().exists(file.storage_key)
    assert events(file.id, "file.deleted") == []


def test_tus_upload_is_scanned_before_it_is_stored(tus, clamd):
    url = tus.create(len(EICAR), **{"Upload-Metadata": metadata(filename="eicar.com")})
    assert tus.patch(url, EICAR, 0).status_code == 204
    file = session_for(url).file
    assert file.status == UploadFile.Status.SCANNING
    assert verify_file(file.id).status == "quarantined"
    assert events(file.id, "file.stored") == []

    clean = b"%PDF-1.4 nothing to see\n" * 100
    url = tus.create(len(clean), **{"Upload-Metadata": metadata(filename="fine.pdf")})
    assert tus.patch(url, clean, 0).status_code == 204
    file = session_for(url).file
    assert file.status == UploadFile.Status.SCANNING
    assert verify_file(file.id).status == "stored"
    assert len(events(file.id, "file.stored")) == 1


@pytest.mark.django_db
def test_scanner_down_holds_files_closed_until_it_is_back(api, clamd, client, settings):
    clamd.stop()
    try:
        body = upload(api, b"waiting for the scanner\n").json()
        outcome = verify_file(body["id"])
        assert outcome.status == "held"
        file = UploadFile.objects.get(pk=body["id"])
        assert file.status == UploadFile.Status.SCANNING
        assert "Waiting for the virus scanner" in file.error_message
        assert file.verify_after > timezone.now()  # backoff
        assert verify_held_files() == 0  # not due yet

        ready = client.get("/readyz").json()
        assert ready["scanner"]["state"] == "unreachable"
        assert ready["scanner"]["held_files"] == 1
        metrics = client.get("/metrics").content.decode()
        assert "doorito_scanner_up 0.0" in metrics
        assert "doorito_files_held 1.0" in metrics
    finally:
        clamd.start()
    # Its backoff over, the sweep finds it and the scan stores it.
    UploadFile.objects.filter(pk=body["id"]).update(
        verify_after=timezone.now() - timedelta(seconds=1)
    )
    assert verify_held_files() == 1
    assert verify_file(body["id"]).status == "stored"
    assert client.get("/readyz").json()["scanner"] == {
        "configured": True,
        "state": "ok",
        "held_files": 0,
        "oldest_held_seconds": 0.0,
    }
    assert "doorito_scanner_up 1.0" in client.get("/metrics").content.decode()


@pytest.mark.django_db
def test_scanner_down_open_stores_files_marked_unscanned(api, clamd, settings):
    settings.SCAN_FAIL_MODE = "open"
    clamd.stop()
    try:
        body = upload(api, b"let through\n").json()
        assert verify_file(body["id"]).status == "stored"
    finally:
        clamd.start()
    file = UploadFile.objects.get(pk=body["id"])
    assert file.scan_result == UploadFile.Scan.UNSCANNED
    [stored] = events(file.id, "file.stored")
    assert stored.payload["file"]["scan_result"] == "unscanned"


@pytest.mark.django_db
def test_a_verifier_that_died_leaves_the_file_to_the_sweep(api, clamd):
    body = upload(api, b"claimed, then the worker died\n").json()
    # A claim (as a verifier makes it) whose verifier never finished.
    from portal.services.verification import _claim

    assert _claim(body["id"]) is not None
    assert verify_file(body["id"]).status == "not_due"  # its lease holds
    UploadFile.objects.filter(pk=body["id"]).update(verify_after=timezone.now())
    assert verify_held_files() == 1
    assert verify_file(body["id"]).status == "stored"


@pytest.mark.django_db
def test_files_are_stored_at_once_without_scanner_or_hook(api, settings):
    settings.CLAMD_URL = ""
    settings.UPLOAD_HOOK_URL = ""
    body = upload(api, b"plain\n").json()
    assert body["status"] == "stored"
    assert body["scan_result"] == ""


@pytest.mark.django_db
def test_held_files_survive_the_ttl_cleanup(api, clamd):
    from portal.services.cleanup import cleanup_expired_upload_files

    clamd.stop()
    try:
        body = upload(api, b"held a long time\n").json()
        verify_file(body["id"])
    finally:
        clamd.start()
    UploadFile.objects.filter(pk=body["id"]).update(created_at=timezone.now() - timedelta(days=30))
    cleanup_expired_upload_files(ttl_hours=24)
    assert UploadFile.objects.filter(pk=body["id"], status="scanning").exists()


def test_signed_link_of_a_scanning_file_only_with_the_pre_store_token(db, user, clamd):
    from portal.services.file_records import upload_file_record_stored
    from portal.storage import generate_storage_key

    key = file_storage().save(generate_storage_key(), SimpleUploadedFile("x", b"abc"))
    file = upload_file_record_stored(
        owner=user,
        storage_key=key,
        filename="x.txt",
        content_type="text/plain",
        size=3,
        sha256=hashlib.sha256(b"abc").hexdigest(),
    )
    assert file.status == UploadFile.Status.SCANNING
    client = Client()
    assert client.get(file_download_url(file)).status_code == 404
    response = client.get(file_download_url(file, pre_store=True))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"abc"


@pytest.mark.django_db
def test_closing_a_batch_waits_for_its_files_being_scanned(api, user, clamd):
    from portal.services.batches import batch_close

    batch = batch_create(owner=user)
    body = upload(api, b"in the batch\n", batch_id=str(batch.id)).json()
    batch = batch_close(batch=batch, actor=user)
    assert batch.expected_files == 1 and batch.status == "in_progress"
    verify_file(body["id"])
    batch.refresh_from_db()
    assert (batch.status, batch.files_stored) == ("complete", 1)


@pytest.mark.django_db
def test_a_batch_closed_early_while_a_file_is_scanned_ends_incomplete(api, user, clamd):
    from portal.services.batches import batch_close

    batch = batch_create(owner=user, expected_files=3)
    body = upload(api, b"one of three\n", batch_id=str(batch.id)).json()
    batch = batch_close(batch=batch, actor=user)
    # Closing keeps the announced count and waits for the file being verified.
    assert (batch.expected_files, batch.status) == (3, "in_progress")
    verify_file(body["id"])
    batch.refresh_from_db()
    assert (batch.status, batch.files_stored, batch.files_missing) == ("incomplete", 1, 2)
    [completed] = OutboxEvent.objects.filter(
        event_type="batch.completed", aggregate_id=str(batch.id)
    )
    assert completed.payload["batch"]["status"] == "incomplete"


@pytest.mark.django_db
def test_a_deleted_quarantined_file_counts_as_deleted_in_its_batch(api, user, clamd):
    batch = batch_create(owner=user, expected_files=2)
    body = upload(api, EICAR, "eicar.com", batch_id=str(batch.id)).json()
    assert verify_file(body["id"]).status == "quarantined"
    batch.refresh_from_db()
    assert (batch.files_failed, batch.files_deleted) == (1, 0)
    assert api.delete(f"/api/files/{body['id']}").status_code == 204
    batch.refresh_from_db()
    # As a deleted failed file: the counts shown match the files listed.
    assert (batch.files_stored, batch.files_failed, batch.files_deleted) == (0, 0, 1)


@pytest.mark.django_db
def test_the_keep_time_is_counted_from_when_a_verified_file_is_stored(api, clamd):
    body = upload(api, b"kept five hours\n", ttl_hours="5").json()
    assert body["status"] == "scanning"
    assert verify_file(body["id"]).status == "stored"
    file = UploadFile.objects.get(pk=body["id"])
    assert file.stored_at is not None and file.expires_at is not None
    assert file.expires_at - file.stored_at == timedelta(hours=5)


@pytest.mark.django_db
def test_files_being_scanned_count_against_the_quota(api, clamd, settings):
    settings.USER_QUOTA_FILES = 1
    assert upload(api, b"first\n").json()["status"] == "scanning"
    error = assert_error(upload(api, b"second\n"), 413, "quota_exceeded")
    assert error["details"]["quota"] == "files"


@pytest.mark.django_db
def test_an_upload_request_submission_is_sent_once_its_files_are_verified(user, clamd, settings):
    from portal.services.file_records import upload_file_record_stored
    from portal.services.upload_requests import (
        submission_file_fields,
        submission_finish,
        submission_start,
        upload_request_create,
    )
    from portal.storage import generate_storage_key

    settings.CELERY_TASK_ALWAYS_EAGER = True  # the owner's email is sent in-process
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    upload_request, _ = upload_request_create(owner=user, title="Contracts")
    submission = submission_start(
        upload_request=upload_request, sender_name="Ada", sender_email="ada@example.com"
    )
    data = b"a signed contract\n"
    key = file_storage().save(generate_storage_key(), SimpleUploadedFile("c", data))
    file = upload_file_record_stored(
        owner=user,
        storage_key=key,
        filename="contract.txt",
        content_type="text/plain",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        batch=submission.batch,
        origin=submission_file_fields(submission),
    )
    assert file.status == UploadFile.Status.SCANNING
    # The sender is done while the file is still being verified: nothing is sent yet.
    submission = submission_finish(submission=submission)
    assert submission.submitted_at is None
    assert not OutboxEvent.objects.filter(event_type="upload_request.submitted").exists()

    assert verify_file(file.id).status == "stored"
    submission.refresh_from_db()
    assert submission.submitted_at is not None
    [sent] = OutboxEvent.objects.filter(event_type="upload_request.submitted")
    assert [f["id"] for f in sent.payload["files"]] == [str(file.id)]
    assert sent.payload["files"][0]["status"] == "stored"
