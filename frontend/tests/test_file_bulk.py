"""Files page: row actions, bulk zip and bulk delete; share links from the file and batch pages."""

from __future__ import annotations

import io
import re
import zipfile

from common.models import OutboxEvent
from portal.models import FileDownload, ShareLink, UploadFile
from portal.services.batches import batch_create
from portal.services.uploads import upload_file_create
from portal.tests.streams import BytesStream


def stored(user, data: bytes, name: str, batch=None) -> UploadFile:
    return upload_file_create(owner=user, stream=BytesStream(data), filename=name, batch=batch)


def test_list_has_row_actions_and_bulk_form(client_user, user):
    file = stored(user, b"abc", "a.txt")
    page = client_user.get("/files/").content.decode()
    assert 'id="bulk-form"' in page and 'name="csrfmiddlewaretoken"' in page
    assert f'name="ids" value="{file.id}" form="bulk-form"' in page
    assert f"/files/{file.id}/download/" in page and f"/files/{file.id}/delete/" in page


def test_bulk_zip_holds_only_own_stored_files(client_user, user, other_user):
    mine = [stored(user, b"one", "a.txt"), stored(user, b"two", "b.txt")]
    theirs = stored(other_user, b"secret", "c.txt")
    response = client_user.post_form(
        "/files/bulk/",
        {"action": "zip", "ids": [str(f.id) for f in [*mine, theirs]] + ["nonsense"]},
        page="/files/",
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith("attachment;")
    data = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["a.txt", "b.txt"]
        assert archive.read("b.txt") == b"two"
    assert set(FileDownload.objects.values_list("file_id", "via", "archive")) == {
        (mine[0].id, "portal", True),
        (mine[1].id, "portal", True),
    }


def test_bulk_delete_asks_then_deletes_own_files_only(client_user, user, other_user):
    mine = [stored(user, b"one", "a.txt"), stored(user, b"two", "b.txt")]
    keep = stored(user, b"keep", "keep.txt")
    theirs = stored(other_user, b"secret", "c.txt")
    ids = [str(f.id) for f in [*mine, theirs]]
    confirm = client_user.post_form(
        "/files/bulk/", {"action": "delete", "ids": ids}, page="/files/"
    )
    assert confirm.status_code == 200
    text = confirm.content.decode()
    assert "Delete 2 files?" in text and "c.txt" not in text
    assert UploadFile.objects.count() == 4  # nothing deleted before the confirmation

    done = client_user.post_form(
        "/files/bulk/", {"action": "delete", "confirm": "yes", "ids": ids}, page="/files/"
    )
    assert done.status_code == 302
    assert set(UploadFile.objects.values_list("id", flat=True)) == {keep.id, theirs.id}
    assert OutboxEvent.objects.filter(event_type="file.deleted").count() == 2


def test_bulk_actions_need_the_csrf_token(client_user, user):
    file = stored(user, b"abc", "a.txt")
    response = client_user.post(
        "/files/bulk/", {"action": "delete", "confirm": "yes", "ids": [file.id]}
    )
    assert response.status_code == 403
    assert UploadFile.objects.filter(pk=file.id).exists()


def test_share_from_the_file_page_then_revoke(client_user, user, anon):
    file = stored(user, b"abc", "a.txt")
    page = client_user.get(f"/files/{file.id}/").content.decode()
    assert "No share links yet" in page and "Not downloaded yet" in page
    made = client_user.post_form(
        f"/files/{file.id}/share/",
        {"expires_in_hours": "2", "max_downloads": "1", "password": ""},
        page=f"/files/{file.id}/",
    )
    assert made.status_code == 201
    url = re.search(r'<code id="share-url">([^<]+)</code>', made.content.decode()).group(1)
    token = url.rsplit("/", 1)[1]
    assert anon.get(f"/s/{token}").status_code == 200
    link = ShareLink.objects.get()
    assert link.max_downloads == 1

    page = client_user.get(f"/files/{file.id}/").content.decode()
    assert "Active" in page
    revoked = client_user.post_form(
        f"/share-links/{link.id}/revoke/", {}, page=f"/files/{file.id}/"
    )
    assert revoked.status_code == 302
    assert anon.get(f"/s/{token}").status_code == 410


def test_bad_share_form_input_makes_nothing(client_user, user, client_other):
    file = stored(user, b"abc", "a.txt")
    response = client_user.post_form(
        f"/files/{file.id}/share/", {"expires_in_hours": "soon"}, page=f"/files/{file.id}/"
    )
    assert response.status_code == 302
    assert not ShareLink.objects.exists()
    other = client_other.post_form(f"/files/{file.id}/share/", {}, page="/files/")
    assert other.status_code == 404
    assert not ShareLink.objects.exists()


def test_share_a_batch_from_its_page(client_user, user):
    batch = batch_create(owner=user, metadata={"name": "Q3"})
    stored(user, b"one", "a.txt", batch=batch)
    page = client_user.get(f"/batches/{batch.id}/").content.decode()
    assert "New share link" in page
    made = client_user.post_form(f"/batches/{batch.id}/share/", {}, page=f"/batches/{batch.id}/")
    assert made.status_code == 201
    assert ShareLink.objects.get().batch_id == batch.id
