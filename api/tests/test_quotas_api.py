"""Quotas over HTTP: 413 quota_exceeded at tus creation and on the simple upload."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from api.tests.conftest import assert_error
from api.tests.tus_helpers import Tus, metadata, raw_token
from portal.models import UploadFile, UploadSession, UserQuota


def upload(client, data: bytes, **extra):
    return client.post(
        "/api/files", {"file": SimpleUploadedFile("a.txt", data, "text/plain")}, **extra
    )


@pytest.mark.django_db(transaction=True)
def test_tus_creation_past_the_bytes_quota_is_413_naming_it(tus, settings):
    settings.USER_QUOTA_BYTES = 1000
    assert tus.request("POST", headers={"Upload-Length": "600"}).status_code == 201
    response = tus.request("POST", headers={"Upload-Length": "401"})
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["details"] == {"quota": "bytes", "limit": 1000, "used": 600, "size": 401}
    assert UploadSession.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_staff_override_beats_the_default(tus, settings):
    settings.USER_QUOTA_FILES = 0
    UserQuota.objects.create(owner=tus.user, max_files=1)
    assert tus.request("POST", headers={"Upload-Length": "5"}).status_code == 201
    response = tus.request("POST", headers={"Upload-Length": "5"})
    assert response.status_code == 413
    assert response.json()["error"]["details"]["quota"] == "files"


@pytest.mark.django_db(transaction=True)
def test_parallel_tus_creations_stop_at_the_quota(live_server, owner, settings):
    """20 senders at once over HTTP against room for 4 uploads: 4 get in."""
    settings.USER_QUOTA_BYTES = 4 * 1024
    clients = [Tus(live_server.url, raw_token(owner)) for _ in range(20)]

    def create(client: Tus) -> int:
        headers = {"Upload-Length": "1024", "Upload-Metadata": metadata(filename="p.bin")}
        return client.request("POST", headers=headers).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(create, clients))
    assert sorted(statuses) == [201] * 4 + [413] * 16
    assert UploadSession.objects.filter(owner=owner).count() == 4


@pytest.mark.django_db
def test_simple_upload_refused_by_its_declared_length_before_it_is_read(api, user, settings):
    settings.USER_QUOTA_BYTES = 100 * 1024
    response = upload(api, b"x" * (200 * 1024))
    error = assert_error(response, 413, "quota_exceeded")
    assert error["details"]["quota"] == "bytes"
    assert not UploadFile.objects.exists()  # refused before a record was made


@pytest.mark.django_db
def test_simple_upload_refused_by_its_exact_size(api, user, settings):
    settings.USER_QUOTA_BYTES = 100
    assert upload(api, b"x" * 60).status_code == 201
    error = assert_error(upload(api, b"y" * 41), 413, "quota_exceeded")
    assert error["details"]["limit"] == 100
    assert UploadFile.objects.get(pk=error["details"]["file_id"]).status == "failed"
    assert upload(api, b"y" * 40).status_code == 201  # exactly full
