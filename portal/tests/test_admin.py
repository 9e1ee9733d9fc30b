"""Admin: both models listed; deleting there goes through the service."""

from __future__ import annotations

import pytest

from common.models import OutboxEvent
from portal.models import UploadFile
from portal.services.batches import batch_create
from portal.services.uploads import upload_file_create
from portal.storage import file_storage
from portal.tests.streams import BytesStream


def test_admin_pages_and_delete(admin_client, user, settings):
    batch = batch_create(owner=user, expected_files=2)
    file = upload_file_create(owner=user, stream=BytesStream(b"x"), filename="a.txt", batch=batch)
    for url in (
        "/admin/portal/uploadfile/",
        f"/admin/portal/uploadfile/{file.pk}/change/",
        "/admin/portal/uploadbatch/",
        f"/admin/portal/uploadbatch/{batch.pk}/change/",
    ):
        assert admin_client.get(url).status_code == 200, url

    response = admin_client.post(
        "/admin/portal/uploadfile/",
        {"action": "delete_selected", "_selected_action": [str(file.pk)], "post": "yes"},
    )
    assert response.status_code == 302
    assert not UploadFile.objects.exists()
    assert not file_storage().exists(file.storage_key)
    event = OutboxEvent.objects.get(event_type="file.deleted")
    assert event.payload["reason"] == "staff"


def test_no_admin_add_for_uploads(admin_client, user):
    """A file record added by hand would have no bytes and list as ``uploading``."""
    for model in ("uploadfile", "uploadsession", "uploadbatch"):
        assert admin_client.get(f"/admin/portal/{model}/add/").status_code == 403, model
        assert admin_client.post(f"/admin/portal/{model}/add/", {}).status_code == 403, model
    assert not UploadFile.objects.exists()
    listing = admin_client.get("/admin/portal/uploadfile/").text
    assert "/admin/portal/uploadfile/add/" not in listing


@pytest.mark.parametrize(
    "metadata",
    [
        '{"x": NaN}',
        '{"x": Infinity}',
        pytest.param("[" * 5000 + "]" * 5000, id="5000-deep"),
        '{"x": "\\u0000"}',
    ],
)
def test_admin_metadata_jsonb_cannot_store_is_a_form_error(admin_client, user, metadata):
    """The admin saves the model directly, past the services: its JSON field
    refuses what PostgreSQL cannot store (it was a database error, a 500)."""
    batch = batch_create(owner=user, metadata={"name": "kept"})
    url = f"/admin/portal/uploadbatch/{batch.pk}/change/"
    form = {
        "owner": str(user.pk),
        "expected_files": "",
        "idempotency_key": "",
        "files-TOTAL_FORMS": "0",
        "files-INITIAL_FORMS": "0",
    }
    response = admin_client.post(url, {**form, "metadata": metadata})
    assert response.status_code == 200  # the form again, with its error
    assert b"Enter valid JSON" in response.content
    batch.refresh_from_db()
    assert batch.metadata == {"name": "kept"}
    # The same form with storable metadata is saved.
    assert admin_client.post(url, {**form, "metadata": '{"name": "new"}'}).status_code == 302
    batch.refresh_from_db()
    assert batch.metadata == {"name": "new"}
