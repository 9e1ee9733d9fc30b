"""The portal's keep-time control, the plain form's keep time, and the quota shown."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from portal.models import UploadFile, UserQuota
from portal.services.uploads import upload_file_create
from portal.tests.streams import BytesStream

pytestmark = pytest.mark.django_db


def test_upload_page_offers_keep_times_up_to_the_maximum(client_user, settings):
    settings.FILE_UPLOAD_TTL_HOURS = 24
    settings.FILE_UPLOAD_MAX_TTL_HOURS = 168
    body = client_user.get("/upload/").content.decode()
    assert "data-keep-time" in body
    assert '<option value="">1 day (default)</option>' in body
    for value, label in [("1", "1 hour"), ("6", "6 hours"), ("72", "3 days"), ("168", "7 days")]:
        assert f'<option value="{value}">{label}</option>' in body
    assert '<option value="720">' not in body  # past the maximum
    assert "up to 168 h" in body


def test_plain_form_stores_with_the_chosen_keep_time(client_user, settings):
    settings.FILE_UPLOAD_MAX_TTL_HOURS = 720
    upload = SimpleUploadedFile("k.txt", b"keep me\n", "text/plain")
    response = client_user.post_form(
        "/upload/simple/", {"file": upload, "ttl_hours": "72"}, page="/upload/"
    )
    assert response.status_code == 302
    file = UploadFile.objects.get()
    assert file.expires_at - file.stored_at == timedelta(hours=72)


def test_plain_form_refuses_a_keep_time_not_offered(client_user, settings):
    settings.FILE_UPLOAD_MAX_TTL_HOURS = 24
    upload = SimpleUploadedFile("k.txt", b"keep me\n", "text/plain")
    response = client_user.post_form(
        "/upload/simple/", {"file": upload, "ttl_hours": "720"}, page="/upload/"
    )
    assert response.status_code == 400
    assert not UploadFile.objects.filter(status="stored").exists()


def test_plain_form_past_the_quota_says_so(client_user, user, settings):
    settings.USER_QUOTA_BYTES = 10
    upload = SimpleUploadedFile("big.txt", b"x" * 11, "text/plain")
    response = client_user.post_form("/upload/simple/", {"file": upload}, page="/upload/")
    assert response.status_code == 400
    assert "quota of 10 bytes" in response.content.decode()
    assert not UploadFile.objects.filter(status="stored").exists()


def test_dashboard_and_upload_page_show_the_quota(client_user, user, settings):
    settings.USER_QUOTA_BYTES = 0
    settings.USER_QUOTA_FILES = 0
    assert 'id="quota"' not in client_user.get("/").content.decode()
    UserQuota.objects.create(owner=user, max_bytes=1000, max_files=4)
    upload_file_create(owner=user, stream=BytesStream(b"x" * 250), filename="a.txt")
    for path in ("/", "/upload/"):
        body = client_user.get(path).content.decode()
        assert 'id="quota"' in body, path
        assert "250\xa0bytes of 1000\xa0bytes" in body
        assert "1 of 4" in body
        assert "(3 left)" in body


def test_staff_edit_quotas_in_the_admin(admin_client, user):
    assert admin_client.get("/admin/portal/userquota/add/").status_code == 200
    response = admin_client.post(
        "/admin/portal/userquota/add/",
        {"owner": str(user.pk), "max_bytes": "5000", "max_files": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    quota = UserQuota.objects.get(owner=user)
    assert (quota.max_bytes, quota.max_files) == (5000, None)
    bad = admin_client.post(
        f"/admin/portal/userquota/{quota.pk}/change/",
        {"owner": str(user.pk), "max_bytes": "-1", "max_files": ""},
    )
    assert bad.status_code == 200  # the form again, with the error
    quota.refresh_from_db()
    assert quota.max_bytes == 5000
