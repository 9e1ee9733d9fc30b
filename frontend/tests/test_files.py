"""The files pages: list (search, filters, sort, pages), detail, download, delete."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from common.exceptions import PayloadTooLargeError
from common.models import OutboxEvent, WebhookDelivery
from common.services.webhooks import endpoint_create
from frontend.tests.helpers import make_batch, make_file, path_of
from portal.models import UploadFile

pytestmark = pytest.mark.django_db


def names(page) -> list[str]:
    """The file names in the list's table, in order."""
    table = page.content.decode().split('id="file-table"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<td class="filename"><a href="/files/[^"]+/">([^<]+)</a>', table)


@pytest.mark.parametrize(
    "path",
    [
        "/files/",
        "/files/00000000-0000-0000-0000-000000000001/",
        "/files/00000000-0000-0000-0000-000000000001/download/",
        "/files/00000000-0000-0000-0000-000000000001/delete/",
    ],
)
def test_anonymous_visitors_are_sent_to_sign_in(anon, path):
    page = anon.get(path)
    assert page.status_code == 302
    assert page["Location"] == f"/login/?next={path}"


def test_list_shows_own_files_only(client_user, user, other_user, staff_user):
    make_file(user, "mine.txt")
    make_file(other_user, "theirs.txt")
    make_file(staff_user, "staff.txt")
    page = client_user.get("/files/")
    assert page.status_code == 200
    assert names(page) == ["mine.txt"]
    assert "12\xa0bytes".encode() in page.content  # human size


def test_staff_list_is_their_own_files_too(client_staff, user, staff_user):
    make_file(user, "mine.txt")
    make_file(staff_user, "staff.txt")
    assert names(client_staff.get("/files/")) == ["staff.txt"]


def test_search_status_batch_and_sort(client_user, user):
    batch = make_batch(user)
    make_file(user, "Alpha.txt", b"a" * 10)
    make_file(user, "beta.txt", b"b" * 300, batch=batch)
    make_file(user, "gamma-alpha.txt", b"c" * 20)
    UploadFile.objects.filter(filename="beta.txt").update(status=UploadFile.Status.FAILED)

    assert names(client_user.get("/files/?q=ALPHA")) == ["gamma-alpha.txt", "Alpha.txt"]
    assert names(client_user.get("/files/?status=failed")) == ["beta.txt"]
    batch_page = client_user.get(f"/files/?batch={batch.id}")
    assert names(batch_page) == ["beta.txt"]
    assert b"Monday scans" in batch_page.content
    assert names(client_user.get("/files/?sort=name")) == [
        "Alpha.txt",
        "beta.txt",
        "gamma-alpha.txt",
    ]
    assert names(client_user.get("/files/?sort=-name")) == [
        "gamma-alpha.txt",
        "beta.txt",
        "Alpha.txt",
    ]
    assert names(client_user.get("/files/?sort=size")) == [
        "Alpha.txt",
        "gamma-alpha.txt",
        "beta.txt",
    ]
    assert names(client_user.get("/files/?sort=-size"))[0] == "beta.txt"
    assert names(client_user.get("/files/?sort=created")) == [
        "Alpha.txt",
        "beta.txt",
        "gamma-alpha.txt",
    ]
    assert names(client_user.get("/files/")) == ["gamma-alpha.txt", "beta.txt", "Alpha.txt"]


def test_date_filters(client_user, user):
    old = make_file(user, "old.txt")
    make_file(user, "new.txt")
    UploadFile.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    today = timezone.now().date()
    assert names(client_user.get(f"/files/?created_from={today}")) == ["new.txt"]
    before = today - timedelta(days=5)
    assert names(client_user.get(f"/files/?created_to={before}")) == ["old.txt"]
    assert names(client_user.get(f"/files/?created_from={before}&created_to={today}")) == [
        "new.txt"
    ]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=exploded", b"Select a valid choice"),
        ("batch=not-a-uuid", b"Enter a valid UUID"),
        ("created_from=yesterday", b"Enter a valid date"),
        ("sort=password", b"Select a valid choice"),
        ("created_from=2030-01-02&created_to=2030-01-01", b"The end date is before the start date"),
        ("q=a%00b", b"cannot contain NUL"),
        ("created_to=9999-12-31", b"Enter a date up to 9999-12-30"),
    ],
)
def test_invalid_filters_are_reported_and_ignored(client_user, user, query, message):
    make_file(user, "a.txt")
    make_file(user, "b.txt")
    page = client_user.get(f"/files/?{query}")
    assert page.status_code == 200
    assert message in page.content
    assert b"This filter was not applied" in page.content
    assert sorted(names(page)) == ["a.txt", "b.txt"]


def test_the_last_representable_end_day_still_filters(client_user, user):
    make_file(user, "a.txt")
    assert names(client_user.get("/files/?created_to=9999-12-30")) == ["a.txt"]
    assert names(client_user.get("/files/?created_from=9999-12-31")) == []


def test_an_invalid_filter_does_not_drop_the_valid_ones(client_user, user):
    make_file(user, "a.txt")
    make_file(user, "b.txt")
    page = client_user.get("/files/?q=b&status=exploded")
    assert names(page) == ["b.txt"]
    assert b"Select a valid choice" in page.content


def test_pagination_25_per_page(client_user, user):
    for i in range(30):
        make_file(user, f"f{i:02}.txt")
    first = client_user.get("/files/?sort=name")
    assert names(first) == [f"f{i:02}.txt" for i in range(25)]
    assert b"Page 1 of 2" in first.content
    second = client_user.get("/files/?sort=name&page=2")
    assert names(second) == [f"f{i:02}.txt" for i in range(25, 30)]
    # The page link keeps the filters.
    assert b"?sort=name&amp;page=2" in first.content
    # A nonsense page number shows a page, not an error.
    assert client_user.get("/files/?page=zzz").status_code == 200
    assert names(client_user.get("/files/?sort=name&page=99")) == names(second)


def test_list_query_count(client_user, user, django_assert_max_num_queries):
    batch = make_batch(user)
    for i in range(30):
        make_file(user, f"f{i:02}.txt", batch=batch if i % 2 else None)
    with django_assert_max_num_queries(10):
        page = client_user.get(f"/files/?q=f&batch={batch.id}&sort=-size")
    assert len(names(page)) == 15


def test_detail_shows_the_facts(client_user, user):
    data = b"some bytes\n"
    batch = make_batch(user, "Receipts")
    file = make_file(user, "receipt.txt", data, batch=batch, metadata={"invoice": 42})
    page = client_user.get(f"/files/{file.id}/")
    assert page.status_code == 200
    body = page.content.decode()
    assert hashlib.sha256(data).hexdigest() in body
    assert 'data-copy="#sha256"' in body
    assert "receipt.txt" in body
    assert "text/plain" in body
    assert "Receipts" in body
    assert "&quot;invoice&quot;: 42" in body
    assert f'href="/files/{file.id}/download/"' in body
    assert "file.stored" in body


def test_another_users_file_is_not_found(client_other, user):
    file = make_file(user)
    for path in ("", "download/", "delete/"):
        assert client_other.get(f"/files/{file.id}/{path}").status_code == 404
    response = client_other.post_form(f"/files/{file.id}/delete/", page="/files/")
    assert response.status_code == 404
    assert UploadFile.objects.filter(pk=file.pk).exists()


def test_staff_may_open_anyones_file(client_staff, user):
    file = make_file(user)
    page = client_staff.get(f"/files/{file.id}/")
    assert page.status_code == 200
    assert b"alice@example.com" in page.content


def test_failed_file_shows_its_error_and_no_download(client_user, user, settings):
    settings.FILE_UPLOAD_MAX_SIZE = 4
    with pytest.raises(PayloadTooLargeError):
        make_file(user, "big.txt", b"0123456789")
    file = UploadFile.objects.get(filename="big.txt")
    page = client_user.get(f"/files/{file.id}/")
    assert b"larger than the limit of 4 bytes" in page.content
    assert b'id="download"' not in page.content
    download = client_user.get(f"/files/{file.id}/download/")
    assert download.status_code == 302
    assert download["Location"] == f"/files/{file.id}/"
    assert b"Only stored files can be downloaded" in client_user.get(download["Location"]).content


def test_download_redirects_to_a_signed_link_that_serves_the_bytes(client_user, user):
    data = b"\x00\x01binary payload" * 100
    file = make_file(user, "blob.bin", data)
    response = client_user.get(f"/files/{file.id}/download/")
    assert response.status_code == 302
    assert "/portal/download/" in response["Location"]
    fetched = client_user.get(path_of(response["Location"]))
    assert fetched.status_code == 200
    assert b"".join(fetched.streaming_content) == data


def test_delete_asks_first_then_deletes_and_announces(client_user, user):
    file = make_file(user, "gone.txt")
    confirm = client_user.get(f"/files/{file.id}/delete/")
    assert confirm.status_code == 200
    assert b"Delete this file?" in confirm.content
    assert UploadFile.objects.filter(pk=file.pk).exists()

    response = client_user.post_form(f"/files/{file.id}/delete/")
    assert response.status_code == 302
    assert response["Location"] == "/files/"
    assert not UploadFile.objects.filter(pk=file.pk).exists()
    assert OutboxEvent.objects.filter(
        event_type="file.deleted", aggregate_type="file", aggregate_id=str(file.id)
    ).exists()
    assert b"gone.txt was deleted" in client_user.get("/files/").content


def test_delete_without_csrf_token_is_refused(client_user, user):
    file = make_file(user)
    response = client_user.post(f"/files/{file.id}/delete/")
    assert response.status_code == 403
    assert UploadFile.objects.filter(pk=file.pk).exists()
    assert not OutboxEvent.objects.filter(event_type="file.deleted").exists()


def test_detail_lists_events_with_deliveries_in_few_queries(
    client_user, user, django_assert_max_num_queries
):
    endpoint_create(url="http://127.0.0.1:9/hooks/a")
    endpoint_create(url="http://127.0.0.1:9/hooks/b")
    batch = make_batch(user)
    file = make_file(user, "watched.txt", batch=batch)
    WebhookDelivery.objects.filter(endpoint__url__endswith="/a").update(
        status=WebhookDelivery.Status.FAILED,
        attempts=3,
        last_status_code=503,
        last_attempt_at=timezone.now(),
    )
    # Other files' events stay off this page.
    for i in range(30):
        make_file(user, f"other{i}.txt")
    with django_assert_max_num_queries(10):
        page = client_user.get(f"/files/{file.id}/")
    body = page.content.decode()
    assert "503" in body
    assert body.count("file.stored") == 1
    # Read-only for a non-staff user: no link to the staff event page.
    assert "/events/" not in body


# Endpoints are staff business (issue #21): an uploader sees how their file's
# deliveries went, never where they went nor what the receiver answered.
SECRET_HOOK = "http://127.0.0.1:9/hooks/a?api_key=s3cret-api-key"


def _file_with_a_failed_delivery(owner) -> UploadFile:
    endpoint_create(url=SECRET_HOOK)
    file = make_file(owner, "watched.txt")
    WebhookDelivery.objects.update(
        status=WebhookDelivery.Status.FAILED,
        attempts=3,
        last_status_code=500,
        last_attempt_at=timezone.now(),
        last_error="HTTP 500",
        last_response="receiver internals: stack trace at db-7.internal",
    )
    return file


def test_detail_hides_the_endpoint_url_from_the_uploader(client_user, user):
    file = _file_with_a_failed_delivery(user)
    body = client_user.get(f"/files/{file.id}/").content.decode()
    assert "s3cret-api-key" not in body
    assert "127.0.0.1:9" not in body
    assert "receiver internals" not in body
    # What they do see: status, attempts and the HTTP code.
    row = body.split('id="events-heading"', 1)[1]
    assert "Failed" in row and ">3<" in row and ">500<" in row


def test_detail_shows_staff_the_endpoint_url(client_staff, user):
    file = _file_with_a_failed_delivery(user)
    body = client_staff.get(f"/files/{file.id}/").content.decode()
    assert "http://127.0.0.1:9/hooks/a?api_key=s3cret-api-key" in body


def test_staff_list_every_users_files_and_filter_by_owner(
    client_staff, staff_user, user, other_user
):
    """#23.9: the Files page's portal-wide view for staff, outside /admin/."""
    from frontend.tests.helpers import make_file as _make

    _make(user, "user-file.txt")
    _make(other_user, "other-file.txt")
    _make(staff_user, "staff-file.txt")

    own = client_staff.get("/files/").content.decode()
    assert "staff-file.txt" in own and "user-file.txt" not in own

    everyone = client_staff.get("/files/?everyone=1").content.decode()
    for name in ("user-file.txt", "other-file.txt", "staff-file.txt"):
        assert name in everyone
    assert '<th scope="col">Owner</th>' in everyone
    assert f"?everyone=1&amp;owner={other_user.email.replace('@', '%40')}" in everyone

    one = client_staff.get(f"/files/?everyone=1&owner={other_user.email}&q=file").content
    one = one.decode()
    assert "other-file.txt" in one and "user-file.txt" not in one
    assert "1 file match" in one

    bad = client_staff.get("/files/?everyone=1&owner=not-an-address").content.decode()
    assert "This filter was not applied." in bad and "user-file.txt" in bad


def test_non_staff_list_only_their_own_whatever_the_query(client_user, user, other_user):
    from frontend.tests.helpers import make_file as _make

    _make(user, "user-file.txt")
    _make(other_user, "other-file.txt")
    page = client_user.get(f"/files/?everyone=1&owner={other_user.email}").content.decode()
    assert "user-file.txt" in page and "other-file.txt" not in page
    assert "Owner" not in page
