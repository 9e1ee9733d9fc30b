"""``file.downloaded``: every completed download is recorded and announced, with how."""

from __future__ import annotations

from django.test import Client

from accounts.models import ApiToken
from common.models import OutboxEvent
from portal.models import FileDownload
from portal.services.uploads import upload_file_create
from portal.tests.streams import BytesStream


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def follow_download(client, response) -> bytes:
    """Fetch the signed link a 302 points at, the way curl -L would (local storage)."""
    assert response.status_code == 302
    got = client.get(path_of(response["Location"]))
    assert got.status_code == 200
    return b"".join(got.streaming_content)


def test_api_token_download_is_announced_with_the_token(api, user):
    file = upload_file_create(owner=user, stream=BytesStream(b"abc"), filename="a.txt")
    assert follow_download(Client(), api.get(f"/api/files/{file.id}/download")) == b"abc"
    download = FileDownload.objects.get()
    assert download.via == "token"
    assert download.user_id == user.id
    assert download.token_id == ApiToken.objects.get(user=user).id
    payload = OutboxEvent.objects.get(event_type="file.downloaded").payload
    assert payload["file"]["id"] == str(file.id)
    assert payload["file"]["download_url"] is None
    assert payload["download"]["via"] == "token"
    assert payload["download"]["token_id"] == str(download.token_id)
    assert payload["download"]["at"]
    assert payload["uploader"]["email"] == user.email


def test_portal_download_is_announced_as_portal(client, user):
    client.force_login(user)
    file = upload_file_create(owner=user, stream=BytesStream(b"abc"), filename="a.txt")
    assert follow_download(client, client.get(f"/files/{file.id}/download/")) == b"abc"
    download = FileDownload.objects.get()
    assert (download.via, download.user_id, download.token_id) == ("portal", user.id, None)
    page = client.get(f"/files/{file.id}/")
    assert "Portal" in page.content.decode() and "Not downloaded yet" not in page.content.decode()


def test_a_webhook_payload_link_is_a_signed_link_download(user, client):
    upload_file_create(owner=user, stream=BytesStream(b"abc"), filename="a.txt")
    url = OutboxEvent.objects.get(event_type="file.stored").payload["file"]["download_url"]
    response = client.get(path_of(url))
    assert b"".join(response.streaming_content) == b"abc"
    assert FileDownload.objects.get().via == "signed_link"
    assert OutboxEvent.objects.filter(event_type="file.downloaded").count() == 1
    assert client.head(path_of(url)).status_code == 200
    assert FileDownload.objects.count() == 1  # a HEAD sends no bytes: no download


def test_s3_download_is_recorded_when_the_presigned_link_is_handed_out(api, user, storage):
    file = upload_file_create(owner=user, stream=BytesStream(b"abc"), filename="a.txt")
    response = api.get(f"/api/files/{file.id}/download")
    assert response.status_code == 302
    if storage.kind == "s3":
        # The bytes go from the bucket: Doorito records the hand-out.
        assert FileDownload.objects.get().via == "token"
    else:
        assert not FileDownload.objects.exists()  # not until the bytes are out
        follow_download(Client(), response)
        assert FileDownload.objects.get().via == "token"


def test_endpoints_can_subscribe_to_file_downloaded(staff_api):
    response = staff_api.post(
        "/api/endpoints",
        {"url": "http://127.0.0.1:9/in", "event_types": ["file.downloaded"]},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
