"""Share links through the API and their public pages: make, list, revoke, download."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone

from api.tests.conftest import assert_error
from common.models import OutboxEvent
from portal.models import FileDownload, ShareLink, UploadFile
from portal.services.batches import batch_create
from portal.services.uploads import upload_file_create
from portal.tests.streams import BytesStream

BODY = b"quarterly figures\n" * 100


def stored(user, data: bytes = BODY, name: str = "report.csv", batch=None) -> UploadFile:
    return upload_file_create(owner=user, stream=BytesStream(data), filename=name, batch=batch)


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def make_link(api, file, **body):
    response = api.post(f"/api/files/{file.id}/share-links", body, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


def fetch(client, url: str):
    response = client.get(path_of(url) + "/download")
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return response, content


def test_create_answers_the_link_once_and_stores_only_its_hash(api, user, settings):
    settings.SITE_URL = "https://files.example.com"
    file = stored(user)
    body = make_link(api, file, expires_in_hours=2, max_downloads=3)
    assert set(body) >= {"id", "url", "expires_at", "max_downloads", "downloads"}
    assert body["url"].startswith("https://files.example.com/s/")
    assert body["max_downloads"] == 3 and body["downloads"] == 0 and body["state"] == "active"
    token = body["url"].rsplit("/", 1)[1]
    assert len(token) >= 43  # 32 random bytes, URL-safe base64: 256 bits
    link = ShareLink.objects.get(pk=body["id"])
    assert link.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(ShareLink.objects.filter(pk=link.pk).values().first())

    listed = api.get(f"/api/files/{file.id}/share-links").json()["items"]
    assert [item["id"] for item in listed] == [body["id"]]
    assert listed[0]["url"] is None  # the plain link exists only in the 201 answer
    assert api.get(f"/api/share-links/{body['id']}").json()["downloads"] == 0


def test_link_never_outlives_the_file(api, user):
    file = stored(user)
    left = int((file.expires_at - timezone.now()).total_seconds() // 3600)
    error = assert_error(
        api.post(
            f"/api/files/{file.id}/share-links",
            {"expires_in_hours": left + 1},
            content_type="application/json",
        ),
        400,
        "expires_after_file",
    )
    assert error["details"]["max"] == left
    default = make_link(api, file)
    assert default["expires_at"] <= file.expires_at.isoformat().replace("+00:00", "Z") or (
        ShareLink.objects.get(pk=default["id"]).expires_at <= file.expires_at
    )


@pytest.mark.parametrize(
    "body",
    [
        {"expires_in_hours": 0},
        {"expires_in_hours": "5"},
        {"expires_in_hours": True},
        {"max_downloads": 0},
        {"max_downloads": -1},
        {"password": ""},
        {"password": "x" * 129},
        {"unknown": 1},
    ],
)
def test_bad_input_is_a_400_and_makes_nothing(api, user, body):
    file = stored(user)
    response = api.post(f"/api/files/{file.id}/share-links", body, content_type="application/json")
    assert_error(response, 400)
    assert not ShareLink.objects.exists()


def test_only_the_owner_shares_and_sees_links(api, other_api, user):
    file = stored(user)
    make_link(api, file)
    assert_error(
        other_api.post(f"/api/files/{file.id}/share-links", {}, content_type="application/json"),
        404,
    )
    assert_error(other_api.get(f"/api/files/{file.id}/share-links"), 404)
    link = ShareLink.objects.get()
    assert_error(other_api.delete(f"/api/share-links/{link.id}"), 404)
    assert other_api.get("/api/share-links").json()["items"] == []
    assert ShareLink.objects.get().revoked_at is None


def test_download_headers_bytes_count_and_event(api, user, client):
    file = stored(user, name="figures <1>.csv")
    body = make_link(api, file, max_downloads=2)
    page = client.get(path_of(body["url"]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "figures &lt;1&gt;.csv" in text and file.sha256 in text and "1.8" in text
    assert page["X-Robots-Tag"].startswith("noindex")

    response, content = fetch(client, body["url"])
    assert response.status_code == 200
    assert content == BODY
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Length"] == str(len(BODY))

    download = FileDownload.objects.get()
    assert (download.file_id, download.via, download.share_link_id) == (
        file.id,
        "share_link",
        ShareLink.objects.get().id,
    )
    event = OutboxEvent.objects.get(event_type="file.downloaded")
    assert event.payload["file"]["id"] == str(file.id)
    assert event.payload["download"]["via"] == "share_link"
    assert event.payload["download"]["share_link_id"] == body["id"]
    assert api.get(f"/api/share-links/{body['id']}").json()["downloads"] == 1

    assert fetch(client, body["url"])[0].status_code == 200
    used_up, _ = fetch(client, body["url"])
    assert used_up.status_code == 410
    assert client.get(path_of(body["url"])).status_code == 410
    assert ShareLink.objects.get().downloads == 2
    assert FileDownload.objects.count() == 2


def test_an_unfinished_download_is_counted_but_not_announced(api, user, client):
    file = stored(user)
    body = make_link(api, file)
    response = client.get(path_of(body["url"]) + "/download")
    next(iter(response.streaming_content))  # the client reads a piece, then goes away
    # What the server's close() does to the content (without request_finished,
    # which would close this test's database connection).
    for closer in response._resource_closers:
        closer()
    assert ShareLink.objects.get().downloads == 1
    assert not FileDownload.objects.exists()
    assert not OutboxEvent.objects.filter(event_type="file.downloaded").exists()


def test_revoked_and_expired_links_answer_410(api, user, client):
    file = stored(user)
    revoked = make_link(api, file)
    assert api.delete(f"/api/share-links/{revoked['id']}").status_code == 204
    assert api.delete(f"/api/share-links/{revoked['id']}").status_code == 204
    assert client.get(path_of(revoked["url"])).status_code == 410
    assert fetch(client, revoked["url"])[0].status_code == 410
    assert api.get(f"/api/share-links/{revoked['id']}").json()["state"] == "revoked"

    expired = make_link(api, file)
    ShareLink.objects.filter(pk=expired["id"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    page = client.get(path_of(expired["url"]))
    assert page.status_code == 410
    assert "expired" in page.content.decode()
    assert fetch(client, expired["url"])[0].status_code == 410
    assert client.get("/s/not-a-token").status_code == 404
    assert ShareLink.objects.filter(downloads__gt=0).count() == 0


def test_password_is_asked_first_and_throttled(api, user, client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    file = stored(user)
    body = make_link(api, file, password="open sesame")
    page = client.get(path_of(body["url"]))
    assert page.status_code == 200 and 'type="password"' in page.content.decode()
    refused = client.get(path_of(body["url"]) + "/download")
    assert refused.status_code == 302  # back to the page and its password form
    assert ShareLink.objects.get().downloads == 0

    wrong = client.post(path_of(body["url"]), {"password": "nope"})
    assert wrong.status_code == 200 and "not right" in wrong.content.decode()
    right = client.post(path_of(body["url"]), {"password": "open sesame"})
    assert right.status_code == 302
    response, content = fetch(client, body["url"])
    assert response.status_code == 200 and content == BODY

    stranger = type(client)()
    for _ in range(2):
        assert (
            "not right" in stranger.post(path_of(body["url"]), {"password": "x"}).content.decode()
        )
    assert stranger.post(path_of(body["url"]), {"password": "guess"}).status_code == 429
    # Locked out: even the right password is not checked from this address now.
    assert stranger.post(path_of(body["url"]), {"password": "open sesame"}).status_code == 429


def test_batch_link_streams_a_zip_of_its_stored_files(api, user, client):
    batch = batch_create(owner=user, metadata={"name": "Q3"})
    one = stored(user, b"one", "a.txt", batch=batch)
    two = stored(user, b"two", "a.txt", batch=batch)
    three = stored(user, b"three", "b.bin", batch=batch)
    response = api.post(
        f"/api/batches/{batch.id}/share-links",
        {"max_downloads": 1},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["batch_id"] == str(batch.id) and body["file_id"] is None
    page = client.get(path_of(body["url"]))
    assert page.status_code == 200 and "3 files" in page.content.decode()

    response, content = fetch(client, body["url"])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert 'filename="Q3.zip"' in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["a.txt", "a (2).txt", "b.bin"]
        assert [archive.read(n) for n in archive.namelist()] == [b"one", b"two", b"three"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in archive.infolist())
    assert set(FileDownload.objects.values_list("file_id", "archive")) == {
        (one.id, True),
        (two.id, True),
        (three.id, True),
    }
    assert fetch(client, body["url"])[0].status_code == 410
    assert [
        link["id"] for link in api.get(f"/api/batches/{batch.id}/share-links").json()["items"]
    ] == [body["id"]]


def test_empty_batch_and_unstored_file_cannot_be_shared(api, user):
    batch = batch_create(owner=user)
    assert_error(
        api.post(f"/api/batches/{batch.id}/share-links", {}, content_type="application/json"),
        409,
        "batch_empty",
    )


def test_share_link_download_from_s3(api, user, client, storage):
    file = stored(user)
    batch = batch_create(owner=user)
    stored(user, b"in a batch", "x.txt", batch=batch)
    body = make_link(api, file)
    response, content = fetch(client, body["url"])
    assert response.status_code == 200 and content == BODY
    zipped = api.post(
        f"/api/batches/{batch.id}/share-links", {}, content_type="application/json"
    ).json()
    response, content = fetch(client, zipped["url"])
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.read("x.txt") == b"in a batch"
