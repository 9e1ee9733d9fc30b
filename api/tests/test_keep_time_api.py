"""ttl_hours over the API: the simple upload's field and the tus metadata."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from api.tests.conftest import assert_error
from api.tests.tus_helpers import metadata, session_for, stored_objects
from portal.models import UploadFile, UploadSession


def upload(client, **fields):
    return client.post(
        "/api/files", {"file": SimpleUploadedFile("a.txt", b"hello\n", "text/plain"), **fields}
    )


def kept_for(body: dict) -> timedelta:
    return datetime.fromisoformat(body["expires_at"]) - datetime.fromisoformat(body["stored_at"])


@pytest.mark.django_db
def test_simple_upload_with_a_keep_time(api, settings):
    settings.FILE_UPLOAD_TTL_HOURS = 24
    settings.FILE_UPLOAD_MAX_TTL_HOURS = 720
    assert kept_for(upload(api, ttl_hours="5").json()) == timedelta(hours=5)
    assert kept_for(upload(api, ttl_hours="720").json()) == timedelta(hours=720)
    assert kept_for(upload(api).json()) == timedelta(hours=24)


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["0", "721", "-3", "2.5", "soon"])
def test_simple_upload_with_a_bad_keep_time_is_400_and_stores_nothing(api, settings, value):
    settings.FILE_UPLOAD_MAX_TTL_HOURS = 720
    error = assert_error(upload(api, ttl_hours=value), 400, "validation_error")
    assert error["details"]["field"] == "ttl_hours"
    assert not UploadFile.objects.exists()
    assert stored_objects(settings) == []


@pytest.mark.django_db(transaction=True)
def test_tus_upload_with_a_keep_time(tus, settings):
    settings.FILE_UPLOAD_MAX_TTL_HOURS = 720
    url = tus.create(5, **{"Upload-Metadata": metadata(filename="a.txt", ttl_hours="3")})
    assert tus.patch(url, b"hello", 0).status_code == 204
    file = session_for(url).file
    assert file.expires_at - file.stored_at == timedelta(hours=3)
    assert "ttl_hours" not in file.metadata  # a record field, not client metadata


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("value", ["0", "721", "x"])
def test_tus_creation_with_a_bad_keep_time_is_400(tus, settings, value):
    settings.FILE_UPLOAD_MAX_TTL_HOURS = 720
    response = tus.request(
        "POST",
        headers={"Upload-Length": "5", "Upload-Metadata": metadata(filename="a", ttl_hours=value)},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == "ttl_hours"
    assert not UploadSession.objects.exists()
