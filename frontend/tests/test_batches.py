"""The batches pages: list with progress, create, detail, live progress, close."""

from __future__ import annotations

import re

import pytest

from common.models import OutboxEvent
from frontend.tests.helpers import make_batch, make_file
from portal.models import UploadBatch

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/batches/",
        "/batches/new/",
        "/batches/00000000-0000-0000-0000-000000000001/",
        "/batches/00000000-0000-0000-0000-000000000001/progress/",
        "/batches/00000000-0000-0000-0000-000000000001/close/",
    ],
)
def test_anonymous_visitors_are_sent_to_sign_in(anon, path):
    page = anon.get(path)
    assert page.status_code == 302
    assert page["Location"] == f"/login/?next={path}"


def test_list_shows_own_batches_with_progress(client_user, user, other_user):
    counted = make_batch(user, "Counted", expected_files=4)
    make_file(user, batch=counted)
    make_batch(user, "Open-ended")
    make_batch(other_user, "Not mine")
    page = client_user.get("/batches/")
    body = page.content.decode()
    assert page.status_code == 200
    assert "Counted" in body and "Open-ended" in body
    assert "Not mine" not in body
    assert '<progress value="1" max="4"' in body
    # Unknown total: an indeterminate bar (no value).
    assert re.search(r"<progress aria-label=\"Open-ended: 0 files so far", body)
    assert "badge-in_progress" in body and "badge-init" in body


def test_create_batch_then_upload_into_it(client_user, user):
    response = client_user.post_form(
        "/batches/new/", {"name": "Invoices March", "expected_files": "3"}, page="/upload/"
    )
    batch = UploadBatch.objects.get(owner=user)
    assert response.status_code == 302
    assert response["Location"] == f"/upload/?batch={batch.id}"
    assert batch.metadata == {"name": "Invoices March"}
    assert batch.expected_files == 3
    page = client_user.get(response["Location"])
    assert f'data-batch-id="{batch.id}"' in page.content.decode()


def test_create_batch_without_expected_files(client_user, user):
    client_user.post_form("/batches/new/", {"name": "Any", "expected_files": ""}, page="/upload/")
    assert UploadBatch.objects.get(owner=user).expected_files is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": ""}, b"This field is required."),
        ({"name": "x", "expected_files": "0"}, b"greater than or equal to 1"),
        ({"name": "x", "expected_files": "many"}, b"Enter a whole number."),
        ({"name": "a\x00b"}, b"Null characters are not allowed."),
    ],
)
def test_invalid_batch_input_is_shown_and_nothing_created(client_user, data, message):
    response = client_user.post_form("/batches/new/", data, page="/upload/")
    assert response.status_code == 400
    assert message in response.content
    assert not UploadBatch.objects.exists()


def test_create_batch_without_csrf_token_is_refused(client_user):
    response = client_user.post("/batches/new/", {"name": "x"})
    assert response.status_code == 403
    assert not UploadBatch.objects.exists()


def test_detail_shows_counters_files_and_polls_while_open(
    client_user, user, django_assert_max_num_queries
):
    batch = make_batch(user, "Live", expected_files=40)
    for i in range(30):
        make_file(user, f"f{i:02}.txt", batch=batch)
    with django_assert_max_num_queries(10):
        page = client_user.get(f"/batches/{batch.id}/")
    body = page.content.decode()
    assert page.status_code == 200
    assert "<h1>Live</h1>" in body
    assert '<span class="value" id="files-stored">30</span>' in body
    assert body.count('<td class="filename">') == 30
    assert f'hx-get="/batches/{batch.id}/progress/"' in body
    assert 'hx-trigger="every 2s"' in body


def test_detail_caps_the_file_list(client_user, user):
    batch = make_batch(user)
    for i in range(52):
        make_file(user, f"f{i:02}.txt", batch=batch)
    body = client_user.get(f"/batches/{batch.id}/").content.decode()
    assert body.count('<td class="filename">') == 50
    assert f'href="/files/?batch={batch.id}"' in body


def test_progress_fragment_polls_until_the_batch_ends(client_user, user):
    batch = make_batch(user, expected_files=2)
    make_file(user, batch=batch)
    fragment = client_user.get(f"/batches/{batch.id}/progress/", headers={"HX-Request": "true"})
    body = fragment.content.decode()
    assert fragment.status_code == 200
    assert "<html" not in body  # just the fragment
    assert body.lstrip().startswith('<section id="batch-progress"')
    assert 'hx-trigger="every 2s"' in body
    assert '<progress value="1" max="2"' in body

    make_file(user, batch=batch)
    ended = client_user.get(f"/batches/{batch.id}/progress/").content.decode()
    assert "Complete" in ended
    assert "hx-trigger" not in ended
    assert "hx-get" not in ended


def test_progress_fragment_is_204_while_nothing_changed(client_user, user):
    """The block sits in a live region: the same counts swapped in again would
    be read out again every 2 s, so the poll names what it shows (``seen``)."""
    batch = make_batch(user, expected_files=2)
    page = client_user.get(f"/batches/{batch.id}/").content.decode()
    seen = re.search(r"hx-vals='\{\"seen\": \"([^\"]+)\"\}'", page)
    assert seen, page
    key = seen.group(1)
    progress = f"/batches/{batch.id}/progress/"
    assert client_user.get(progress, {"seen": key}).status_code == 204
    make_file(user, batch=batch)
    changed = client_user.get(progress, {"seen": key})
    assert changed.status_code == 200
    assert '<span class="value" id="files-stored">1</span>' in changed.content.decode()
    # The page's live region is outside the block htmx replaces.
    assert re.search(r'aria-live="polite">\s*<section id="batch-progress"', page)
    assert "aria-live" not in changed.content.decode()


def test_close_asks_first_then_ends_the_batch(client_user, user):
    batch = make_batch(user, "Closing")
    make_file(user, batch=batch)
    confirm = client_user.get(f"/batches/{batch.id}/close/")
    assert confirm.status_code == 200
    assert b"Close this batch?" in confirm.content
    batch.refresh_from_db()
    assert batch.closed_at is None

    response = client_user.post_form(f"/batches/{batch.id}/close/")
    assert response.status_code == 302
    assert response["Location"] == f"/batches/{batch.id}/"
    batch.refresh_from_db()
    assert batch.status == UploadBatch.Status.COMPLETE
    assert batch.expected_files == 1
    assert OutboxEvent.objects.filter(
        event_type="batch.completed", aggregate_id=str(batch.id)
    ).exists()
    page = client_user.get(response["Location"]).content.decode()
    assert "The batch was closed: complete." in page
    assert "hx-trigger" not in page
    assert "Close batch" not in page


def test_close_without_csrf_token_is_refused(client_user, user):
    batch = make_batch(user)
    response = client_user.post(f"/batches/{batch.id}/close/")
    assert response.status_code == 403
    batch.refresh_from_db()
    assert batch.closed_at is None


def test_another_users_batch_is_not_found(client_other, user):
    batch = make_batch(user)
    for path in ("", "progress/", "close/"):
        assert client_other.get(f"/batches/{batch.id}/{path}").status_code == 404
    response = client_other.post_form(f"/batches/{batch.id}/close/", page="/batches/")
    assert response.status_code == 404
    batch.refresh_from_db()
    assert batch.closed_at is None


def test_list_query_count(client_user, user, django_assert_max_num_queries):
    for i in range(30):
        make_batch(user, f"b{i}", expected_files=5)
    with django_assert_max_num_queries(10):
        page = client_user.get("/batches/?page=2")
    assert page.content.decode().count("<progress") == 5


def test_empty_closed_batch_shows_no_full_bar(client_user, user):
    """#23.2: "Closed empty" and an empty bar, not "Complete" and a full one."""
    batch = make_batch(user, "Nothing came")
    client_user.post_form(f"/batches/{batch.id}/close/", page=f"/batches/{batch.id}/close/")
    body = client_user.get(f"/batches/{batch.id}/").content.decode()
    assert "Closed empty" in body and "badge-empty" in body
    assert '<progress value="0" max="1"' in body
    assert '<progress value="1" max="1"' not in body


def test_batch_closed_early_shows_what_is_missing(client_user, user):
    """#23.1: 1 of 3 arrived; the page says 2 never came and keeps 3 expected."""
    batch = make_batch(user, "Three scans", expected_files=3)
    make_file(user, batch=batch)
    page = client_user.get(f"/batches/{batch.id}/close/").content.decode()
    assert "3 were expected" in page
    client_user.post_form(f"/batches/{batch.id}/close/", page=f"/batches/{batch.id}/close/")
    body = client_user.get(f"/batches/{batch.id}/").content.decode()
    assert "Closed with files missing" in body
    assert re.search(r'id="files-expected">3<', body)
    assert re.search(r'id="files-missing">2<', body)
    assert '<progress value="1" max="3"' in body
    listing = client_user.get("/batches/").content.decode()
    assert "(2 missing)" in listing


def test_deleted_file_leaves_the_stored_count(client_user, user):
    """#23.2: 2 stored shown while 1 is listed, no more."""
    batch = make_batch(user, "Pair", expected_files=2)
    first = make_file(user, batch=batch)
    make_file(user, "second.txt", batch=batch)
    client_user.post_form(f"/files/{first.id}/delete/", page=f"/files/{first.id}/")
    body = client_user.get(f"/batches/{batch.id}/").content.decode()
    assert re.search(r'id="files-stored">1<', body)
    assert re.search(r'id="files-deleted">1<', body)
    assert body.count('class="filename"') == 1
