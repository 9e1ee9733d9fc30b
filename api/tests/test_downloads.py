"""The signed local download view."""

from __future__ import annotations

import time

from django.core import signing

from portal.services.uploads import upload_file_create
from portal.storage import DOWNLOAD_SIGNING_SALT, file_download_url
from portal.tests.streams import BytesStream


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def test_download_url_is_absolute_and_signed(user, client, settings):
    settings.SITE_URL = "https://files.example.com"
    file = upload_file_create(owner=user, stream=BytesStream(b"abc"), filename="a.txt")
    url = file_download_url(file)
    assert url.startswith("https://files.example.com/portal/download/")

    response = client.get(path_of(url))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"abc"
    assert response["Content-Type"] == "text/plain"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_tampered_and_expired_links_are_refused(user, client, settings):
    file = upload_file_create(owner=user, stream=BytesStream(b"abc"), filename="a.txt")
    response = client.get(path_of(file_download_url(file)) + "x")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "bad_link"

    old = signing.TimestampSigner(salt=DOWNLOAD_SIGNING_SALT)
    token = old.sign(str(file.id))
    settings.AWS_QUERYSTRING_EXPIRE = 1
    time.sleep(2.1)
    response = client.get(f"/portal/download/{token}")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "link_expired"


def test_deleted_file_link_is_not_found(user, client):
    from portal.services.file_records import upload_file_delete

    file = upload_file_create(owner=user, stream=BytesStream(b"abc"), filename="a.txt")
    url = file_download_url(file)
    upload_file_delete(file=file, actor=user)
    response = client.get(path_of(url))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
