"""Uploads over real HTTP (live server on 127.0.0.1), as a client sends them."""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest

from accounts.models import User
from accounts.services.tokens import token_create
from portal.models import UploadFile

pytestmark = pytest.mark.slow


@pytest.fixture
def bearer(transactional_db) -> dict[str, str]:
    user = User.objects.create_user("live@example.com", "pw-123456")
    _, raw = token_create(user=user, name="live")
    return {"Authorization": f"Bearer {raw}"}


def test_multipart_upload_over_http(live_server, bearer, settings):
    settings.SITE_URL = live_server.url  # download links point at this server
    data = os.urandom(3 * 1024 * 1024 + 17)  # over the in-memory threshold: spooled
    response = httpx.post(
        f"{live_server.url}/api/files",
        headers=bearer,
        files={"file": ("blob.bin", data, "application/octet-stream")},
        data={"metadata": '{"source": "live"}'},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["size"] == len(data)
    location = httpx.get(
        f"{live_server.url}/api/files/{body['id']}/download", headers=bearer
    ).headers["location"]
    assert hashlib.sha256(httpx.get(location).content).hexdigest() == body["sha256"]


def test_oversized_body_refused_before_it_is_read(live_server, bearer, settings):
    settings.FILE_UPLOAD_MAX_SIZE = 1024 * 1024
    sent = 0

    def body():
        nonlocal sent
        chunk = b"-" * 65536
        # Declared 64 MiB; the server answers from the headers alone.
        for _ in range(1024):
            sent += len(chunk)
            yield chunk

    headers = {
        **bearer,
        "Content-Type": "multipart/form-data; boundary=xyz",
        "Content-Length": str(64 * 1024 * 1024),
    }
    try:
        response = httpx.post(
            f"{live_server.url}/api/files", headers=headers, content=body(), timeout=60
        )
    except httpx.HTTPError:
        pytest.fail("the server should answer 413, not drop the connection")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not UploadFile.objects.exists()
