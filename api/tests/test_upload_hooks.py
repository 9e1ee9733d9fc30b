"""The operator's upload hook, against a real HTTP receiver on 127.0.0.1:
``upload.pre_create`` before any upload exists (simple and tus),
``upload.pre_store`` before a received file is stored."""

from __future__ import annotations

import json

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from standardwebhooks.webhooks import Webhook

from api.tests.conftest import assert_error
from api.tests.tus_helpers import metadata, session_for, stored_objects
from common.models import OutboxEvent
from common.services.signing import generate_secret
from common.tests.receivers import Reply
from portal.models import UploadFile, UploadSession
from portal.services.batches import batch_create
from portal.services.verification import verify_file
from portal.storage import file_storage


@pytest.fixture
def hook(receiver, settings):
    settings.UPLOAD_HOOK_URL = receiver.url("/hook")
    settings.UPLOAD_HOOK_SECRET = generate_secret()
    settings.UPLOAD_HOOK_TIMEOUT_SECONDS = 1
    settings.CLAMD_URL = ""
    return receiver


def upload(client, data: bytes = b"hello world\n", name: str = "hello.txt", **fields):
    return client.post(
        "/api/files", {"file": SimpleUploadedFile(name, data, "text/plain"), **fields}
    )


def answer(status: int, **body) -> Reply:
    return Reply(
        status=status, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )


def verified(received, settings) -> dict:
    """The request as a receiver checks it: the signature, then the JSON."""
    return Webhook(settings.UPLOAD_HOOK_SECRET).verify(received.body, received.headers)


@pytest.mark.django_db
def test_pre_create_is_signed_and_may_add_metadata(api, user, hook, settings):
    hook.script("/hook", answer(200, metadata={"customer": "ACME"}), Reply(200))
    batch = batch_create(owner=user, expected_files=1)
    response = upload(api, name="q3.txt", batch_id=str(batch.id), metadata='{"k": "v"}')
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "scanning"  # the pre-store hook is asked next
    assert body["metadata"] == {"k": "v", "customer": "ACME"}

    pre_create, *_ = hook.on("/hook")
    envelope = verified(pre_create, settings)
    assert envelope["type"] == "upload.pre_create"
    data = envelope["data"]
    assert data["uploader"] == {"id": str(user.id), "email": user.email}
    assert data["upload"]["filename"] == "q3.txt"
    assert data["upload"]["content_type"] == "text/plain"
    assert data["upload"]["kind"] == "simple"


@pytest.mark.django_db
def test_pre_create_refusal_is_403_with_the_hooks_message_and_changes_nothing(api, hook, settings):
    hook.always("/hook", answer(422, message="Only invoices, please."))
    error = assert_error(upload(api), 403, "upload_refused")
    assert error["message"] == "Only invoices, please."
    assert UploadFile.objects.count() == 0
    assert stored_objects(settings) == []


@pytest.mark.django_db
def test_pre_create_unavailable_fails_closed_with_503_or_open(api, hook, settings):
    hook.always("/hook", Reply(status=500))
    error = assert_error(upload(api), 503, "upload_hook_unavailable")
    assert "upload hook is unavailable" in error["message"]
    assert "HTTP 500" in error["details"]["reason"]
    assert UploadFile.objects.count() == 0

    hook.always("/hook", Reply(delay=2))  # longer than the 1 s timeout
    error = assert_error(upload(api), 503, "upload_hook_unavailable")
    assert "did not answer within 1 s" in error["details"]["reason"]

    settings.UPLOAD_HOOK_FAIL_MODE = "open"
    assert upload(api).status_code == 201


@pytest.mark.django_db
def test_the_ssrf_guard_applies_to_the_hook(api, hook, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    error = assert_error(upload(api), 503, "upload_hook_unavailable")
    assert "loopback" in error["details"]["reason"]
    assert hook.on("/hook") == []


def test_tus_creation_asks_the_hook_first(tus, hook, settings):
    hook.script("/hook", answer(403, message="No executables."))
    response = tus.request(
        "POST",
        headers={"Upload-Length": "4", "Upload-Metadata": metadata(filename="a.exe")},
    )
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "No executables."
    assert UploadSession.objects.count() == 0
    data = verified(hook.on("/hook")[0], settings)["data"]
    assert data["upload"] == {
        "kind": "tus",
        "filename": "a.exe",
        "size": 4,
        "content_type": "",
        "metadata": {},
        "batch_id": None,
        "file_request_id": None,
    }

    hook.script("/hook", answer(201, metadata={"ticket": "T-1"}), Reply(204))
    url = tus.create(4, **{"Upload-Metadata": metadata(filename="fine.txt")})
    assert tus.patch(url, b"abcd", 0).status_code == 204
    file = session_for(url).file
    assert verify_file(file.id).status == "stored"
    file.refresh_from_db()
    assert file.metadata["ticket"] == "T-1"


@pytest.mark.django_db
def test_pre_store_refusal_rejects_deletes_bytes_and_emits_file_rejected(
    api, user, hook, settings, client
):
    batch = batch_create(owner=user, expected_files=1)
    hook.script("/hook", Reply(200), answer(409, message="Duplicate of an earlier invoice."))
    body = upload(api, b"%PDF-1.4 invoice\n", "inv.pdf", batch_id=str(batch.id)).json()
    key = UploadFile.objects.get(pk=body["id"]).storage_key
    assert file_storage().exists(key)

    outcome = verify_file(body["id"])
    assert outcome.status == "rejected"
    file = UploadFile.objects.get(pk=body["id"])
    assert file.status == UploadFile.Status.REJECTED
    assert file.error_message == "Duplicate of an earlier invoice."
    assert file.storage_key == "" and not file_storage().exists(key)
    [rejected] = OutboxEvent.objects.filter(aggregate_id=file.id, event_type="file.rejected")
    assert rejected.payload["reason"] == {
        "code": "upload_hook",
        "message": "Duplicate of an earlier invoice.",
    }
    assert not OutboxEvent.objects.filter(aggregate_id=file.id, event_type="file.stored")
    batch.refresh_from_db()
    assert (batch.files_stored, batch.files_failed) == (0, 1)

    pre_store = verified(hook.on("/hook")[1], settings)
    assert pre_store["type"] == "upload.pre_store"
    assert pre_store["data"]["file"]["sha256"] == file.sha256
    assert pre_store["data"]["scan"] == {"result": None}
    # The link it carried served the bytes while the file was being checked;
    # now the file is rejected it serves nothing.
    url = pre_store["data"]["file"]["download_url"]
    assert client.get(httpx.URL(url).raw_path.decode()).status_code == 404


@pytest.mark.django_db
def test_pre_store_link_serves_the_bytes_while_the_file_is_checked(api, hook, client):
    hook.script("/hook", Reply(200), Reply(200))
    body = upload(api, b"check me\n").json()
    # The hook fetches before it answers: emulate it with the link it was sent.
    from portal.services.verification import pre_store_data

    url = pre_store_data(UploadFile.objects.get(pk=body["id"]), "")["file"]["download_url"]
    response = client.get(httpx.URL(url).raw_path.decode())
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"check me\n"


@pytest.mark.django_db
def test_pre_store_unavailable_holds_the_file_when_closed(api, hook, settings):
    hook.script("/hook", Reply(200), Reply(status=503))
    body = upload(api).json()
    assert verify_file(body["id"]).status == "held"
    file = UploadFile.objects.get(pk=body["id"])
    assert file.status == UploadFile.Status.SCANNING
    assert "Waiting for the upload hook" in file.error_message
