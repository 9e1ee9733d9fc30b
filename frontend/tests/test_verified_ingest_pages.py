"""The portal's pages with verified ingest: the upload form shows the hook's
refusal; a file being checked, quarantined or rejected says so, with why."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from common.tests.receivers import Reply
from frontend.tests.helpers import make_file
from portal.models import UploadFile

pytestmark = pytest.mark.django_db


def test_upload_form_shows_the_hooks_refusal(client_user, receiver, settings):
    settings.UPLOAD_HOOK_URL = receiver.url("/hook")
    receiver.always(
        "/hook", Reply(status=403, body=json.dumps({"message": "Invoices only."}).encode())
    )
    upload = SimpleUploadedFile("cat.txt", b"meow")
    response = client_user.post_form("/upload/simple/", {"file": upload}, page="/upload/")
    assert response.status_code == 400
    assert b"Invoices only." in response.content
    assert not UploadFile.objects.exists()


def test_upload_form_says_a_file_is_being_checked(client_user, receiver, settings):
    settings.UPLOAD_HOOK_URL = receiver.url("/hook")
    upload = SimpleUploadedFile("ok.txt", b"fine")
    response = client_user.post_form("/upload/simple/", {"file": upload}, page="/upload/")
    assert response.status_code == 302
    page = client_user.get(response["Location"]).content
    assert b"it is being checked before it is stored" in page
    assert b"Being checked before it is stored" in page
    assert b'id="download"' not in page


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        (
            {"status": "quarantined", "scan_signature": "Win.Test.EICAR_HDB-1"},
            [b"Quarantined", b"Win.Test.EICAR_HDB-1", b"cannot be downloaded"],
        ),
        (
            {"status": "rejected", "error_message": "Duplicate invoice."},
            [b"Rejected", b"Duplicate invoice.", b"bytes were deleted"],
        ),
        (
            {"status": "scanning", "error_message": "Waiting for the virus scanner: down"},
            [b"Scanning", b"Waiting for the virus scanner", b"tried again automatically"],
        ),
    ],
)
def test_file_pages_show_the_verification_state_and_why(client_user, user, fields, shown):
    file = make_file(user, name="x.bin")
    UploadFile.objects.filter(pk=file.pk).update(**fields)
    detail = client_user.get(f"/files/{file.id}/").content
    for text in shown:
        assert text in detail
    assert b'id="download"' not in detail
    listing = client_user.get("/files/").content
    assert fields["status"].capitalize().encode() in listing
