"""Upload requests over the API and the tus endpoint: the owner's side and the outsider's.

The outsider's uploads go over real HTTP (the live server) with the
request credential the public page hands out, exactly as the browser sends it.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from api.tests.conftest import assert_error
from api.tests.tus_helpers import OCTET, TUS, metadata, session_for
from common.models import OutboxEvent
from portal.models import UploadFile, UploadRequest
from portal.services.upload_requests import (
    CREDENTIAL_HEADER,
    submission_credential,
    submission_finish,
    submission_start,
    upload_request_create,
    upload_request_revoke,
)

PDF = b"%PDF-1.4\n% request test\n" + b"0" * 40


# --- the owner's API ----------------------------------------------------------------------


@pytest.mark.django_db
def test_create_shows_the_link_once_and_stores_only_its_hash(api, user):
    response = api.post(
        "/api/upload-requests",
        {
            "title": "Tax documents 2026",
            "message": "Payslips and receipts, please.",
            "expires_in_hours": 48,
            "password": "open sesame",
            "max_files": 3,
            "max_bytes": 10_000_000,
            "require_sender": True,
            "allowed_types": ["application/pdf", "image/*"],
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["url"].startswith("http://testserver/r/")
    token = body["url"].rstrip("/").rsplit("/", 1)[1]
    assert len(token) >= 22  # ≥ 128 bits in base64url
    assert body["state"] == "open"
    assert body["has_password"] is True
    assert (body["max_files"], body["max_bytes"]) == (3, 10_000_000)
    assert body["allowed_types"] == ["application/pdf", "image/*"]
    stored = UploadRequest.objects.get(pk=body["id"])
    assert token not in json.dumps(list(UploadRequest.objects.values()), default=str)
    assert "open sesame" not in stored.password_hash
    assert stored.owner == user

    listed = api.get("/api/upload-requests").json()
    assert listed["count"] == 1
    assert listed["items"][0]["url"] is None  # never again
    detail = api.get(f"/api/upload-requests/{body['id']}").json()
    assert detail["submissions"] == []
    assert detail["url"] is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": "x", "expires_in_hours": 100_000}, "expires_in_hours"),
        ({"title": "   "}, "title"),
        ({"title": "x", "allowed_types": ["not a type"]}, "allowed_types"),
        ({"title": "x", "max_files": 0}, "max_files"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_creates_nothing(api, payload, field):
    response = api.post("/api/upload-requests", payload, content_type="application/json")
    error = assert_error(response, 400)
    assert field in json.dumps(error)
    assert not UploadRequest.objects.exists()


@pytest.mark.django_db
def test_allowed_types_can_only_narrow_the_portals(api, settings):
    settings.FILE_UPLOAD_ALLOWED_TYPES = ["application/pdf", "text/plain"]
    response = api.post(
        "/api/upload-requests",
        {"title": "x", "allowed_types": ["image/png"]},
        content_type="application/json",
    )
    assert assert_error(response, 400)["details"]["field"] == "allowed_types"


@pytest.mark.django_db
def test_others_cannot_see_or_revoke_and_revoke_is_idempotent(api, other_api, user):
    created, _ = upload_request_create(owner=user, title="Mine")
    assert_error(other_api.get(f"/api/upload-requests/{created.id}"), 404)
    assert_error(other_api.delete(f"/api/upload-requests/{created.id}"), 404)
    assert other_api.get("/api/upload-requests").json()["count"] == 0
    assert api.delete(f"/api/upload-requests/{created.id}").status_code == 204
    first = UploadRequest.objects.get(pk=created.id).revoked_at
    assert api.delete(f"/api/upload-requests/{created.id}").status_code == 204
    assert UploadRequest.objects.get(pk=created.id).revoked_at == first
    assert api.get(f"/api/upload-requests/{created.id}").json()["state"] == "revoked"


# --- the outsider's uploads over tus ---------------------------------------------------------


class Sender:
    """What the public page's browser does: tus with the request credential only."""

    def __init__(self, base_url: str, credential: str):
        self.base = base_url.rstrip("/") + "/api/tus/"
        self.http = httpx.Client(timeout=30)
        self.headers = {**TUS, CREDENTIAL_HEADER: credential}

    def create(self, length: int, name: str = "scan.pdf", kind: str = "application/pdf"):
        return self.http.post(
            self.base,
            headers={
                **self.headers,
                "Upload-Length": str(length),
                "Upload-Metadata": metadata(filename=name, filetype=kind),
            },
        )

    def patch(self, url: str, data: bytes, offset: int = 0):
        return self.http.patch(
            url,
            headers={**self.headers, **OCTET, "Upload-Offset": str(offset)},
            content=data,
        )

    def upload(self, data: bytes, **kwargs) -> str:
        created = self.create(len(data), **kwargs)
        assert created.status_code == 201, created.text
        url = created.headers["Location"]
        patched = self.patch(url, data)
        assert patched.status_code == 204, patched.text
        return url


def _sender(live_server, upload_request, name="Ada Client", email="ada@example.com"):
    submission = submission_start(
        upload_request=upload_request, sender_name=name, sender_email=email
    )
    return Sender(live_server.url, submission_credential(submission)), submission


@pytest.mark.django_db(transaction=True)
def test_a_senders_file_lands_in_their_batch_and_carries_the_request_and_sender(live_server, owner):
    from api.tests.tus_helpers import raw_token

    upload_request, _ = upload_request_create(owner=owner, title="Invoices")
    sender, submission = _sender(live_server, upload_request)
    url = sender.upload(PDF)
    file = session_for(url).file
    assert file.owner == owner
    assert file.batch_id == submission.batch_id
    assert (file.upload_request_id, file.sender_name, file.sender_email) == (
        upload_request.id,
        "Ada Client",
        "ada@example.com",
    )
    # The owner's API shows where it came from ...
    api = httpx.Client(headers={"Authorization": f"Bearer {raw_token(owner)}"})
    shown = api.get(f"{live_server.url}/api/files/{file.id}").json()
    assert shown["upload_request_id"] == str(upload_request.id)
    assert (shown["sender_name"], shown["sender_email"]) == ("Ada Client", "ada@example.com")
    # ... and so does the webhook payload.
    event = OutboxEvent.objects.get(event_type="file.stored", aggregate_id=file.id)
    assert event.payload["file"]["upload_request_id"] == str(upload_request.id)
    assert event.payload["file"]["sender_email"] == "ada@example.com"


@pytest.mark.django_db(transaction=True)
def test_the_credential_reads_lists_and_deletes_nothing(live_server, owner, tus):
    upload_request, _ = upload_request_create(owner=owner, title="Invoices")
    sender, _ = _sender(live_server, upload_request)
    mine = sender.upload(PDF)
    owners_own = tus.create(10)  # the owner's upload, not the request's
    # Not another upload of the owner's, even to look at it.
    assert sender.http.head(owners_own, headers=sender.headers).status_code == 404
    assert sender.patch(owners_own, b"0123456789").status_code == 404
    # No delete, not even of its own upload.
    refused = sender.http.delete(mine, headers=sender.headers)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "upload_request_forbidden"
    # The API does not know it at all.
    for path in ("/api/files", "/api/upload-requests", "/api/batches"):
        answer = sender.http.get(live_server.url + path, headers={CREDENTIAL_HEADER: "x"})
        assert answer.status_code == 401
    # A forged credential is no credential.
    forged = sender.http.post(
        sender.base, headers={**TUS, CREDENTIAL_HEADER: "forged", "Upload-Length": "3"}
    )
    assert forged.status_code == 401
    assert UploadFile.objects.filter(upload_request=upload_request).count() == 1


@pytest.mark.django_db(transaction=True)
def test_limits_are_refused_at_creation_naming_the_limit(live_server, owner):
    upload_request, _ = upload_request_create(
        owner=owner,
        title="Two small PDFs",
        max_files=2,
        max_bytes=100,
        allowed_types=["application/pdf"],
    )
    sender, _ = _sender(live_server, upload_request)
    wrong_type = sender.create(10, name="photo.png", kind="image/png")
    assert wrong_type.status_code == 415
    assert wrong_type.json()["error"]["details"]["limit"] == "allowed_types"
    too_big = sender.create(101)
    assert too_big.status_code == 413
    assert too_big.json()["error"]["details"]["limit"] == "max_bytes"
    assert too_big.headers["Tus-Max-Size"] == "100"
    sender.upload(PDF)  # 64 bytes
    rest = sender.create(37)
    assert rest.status_code == 413
    assert rest.headers["Tus-Max-Size"] == "36"
    assert sender.create(36).status_code == 201
    full = sender.create(0)
    assert full.status_code == 403
    assert full.json()["error"]["code"] == "upload_request_max_files"
    assert full.json()["error"]["details"]["limit"] == "max_files"


@pytest.mark.django_db(transaction=True)
def test_a_refused_file_gives_its_place_back(live_server, owner):
    upload_request, _ = upload_request_create(
        owner=owner, title="One PDF", max_files=1, allowed_types=["application/pdf"]
    )
    sender, _ = _sender(live_server, upload_request)
    # Declared a PDF, but the content is not: refused when it is finished.
    fake = b"just some text, not a pdf at all"
    created = sender.create(len(fake))
    assert created.status_code == 201
    refused = sender.patch(created.headers["Location"], fake)
    assert refused.status_code == 415
    sender.upload(PDF)
    assert UploadFile.objects.filter(upload_request=upload_request, status="stored").count() == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_senders_never_exceed_max_files(live_server, owner):
    upload_request, _ = upload_request_create(owner=owner, title="Five only", max_files=5)
    senders = [_sender(live_server, upload_request, name=f"s{i}")[0] for i in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda s: s.create(len(PDF)).status_code, senders))
    assert sorted(answers).count(201) == 5
    assert set(answers) == {201, 403}
    assert upload_request.submissions.filter(upload_sessions__isnull=False).count() == 5


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["revoked", "expired"])
def test_a_closed_request_answers_410_to_creation_and_to_patches(live_server, owner, how):
    upload_request, _ = upload_request_create(owner=owner, title="Closing")
    sender, _ = _sender(live_server, upload_request)
    started = sender.create(len(PDF))
    assert started.status_code == 201
    if how == "revoked":
        upload_request_revoke(upload_request=upload_request, actor=owner)
    else:
        UploadRequest.objects.filter(pk=upload_request.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
    for answer in (sender.create(len(PDF)), sender.patch(started.headers["Location"], PDF)):
        assert answer.status_code == 410
        assert answer.json()["error"]["code"] == "upload_request_closed"
        assert answer.json()["error"]["details"]["state"] == how
    assert not UploadFile.objects.filter(upload_request=upload_request).exists()


# --- the end of a sender's uploads: the event -------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_finishing_emits_upload_request_submitted_once_and_lists_it(live_server, owner, settings):
    from api.tests.tus_helpers import raw_token

    settings.CELERY_TASK_ALWAYS_EAGER = True  # the owner's email is sent in-process
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    upload_request, _ = upload_request_create(owner=owner, title="Contracts")
    sender, submission = _sender(live_server, upload_request)
    url = sender.upload(PDF, name="contract.pdf")
    submission_finish(submission=submission)
    submission_finish(submission=submission)
    events = OutboxEvent.objects.filter(event_type="upload_request.submitted")
    assert events.count() == 1
    payload = events.get().payload
    assert payload["upload_request"]["id"] == str(upload_request.id)
    assert payload["submission"]["sender_email"] == "ada@example.com"
    assert payload["submission"]["files_stored"] == 1
    assert [f["filename"] for f in payload["files"]] == ["contract.pdf"]
    assert payload["files"][0]["id"] == str(session_for(url).file_id)
    assert payload["owner"]["email"] == owner.email
    # The batch ended, and new uploads in it are refused.
    assert sender.create(3).status_code == 409
    api = httpx.Client(headers={"Authorization": f"Bearer {raw_token(owner)}"})
    detail = api.get(f"{live_server.url}/api/upload-requests/{upload_request.id}").json()
    assert detail["files_received"] == 1
    [listed] = detail["submissions"]
    assert (listed["sender_name"], listed["files_stored"]) == ("Ada Client", 1)
    assert listed["submitted_at"] is not None
