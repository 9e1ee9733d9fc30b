"""The dashboard: the user's own numbers, and delivery health for staff only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from common.models import WebhookDelivery
from common.services.webhooks import endpoint_create
from frontend.tests.helpers import make_batch, make_file
from portal.models import UploadFile
from portal.services.file_records import upload_file_delete

pytestmark = pytest.mark.django_db


def test_counts_are_the_users_own(client_user, user, other_user):
    for i in range(3):
        make_file(user, f"mine-{i}.txt", b"x" * 100)
    soon = make_file(user, "soon.txt", b"y" * 50)
    UploadFile.objects.filter(pk=soon.pk).update(expires_at=timezone.now() + timedelta(minutes=30))
    gone = make_file(user, "gone.txt")
    upload_file_delete(file=gone, actor=user)
    UploadFile.objects.create(owner=user, filename="half.bin", status="uploading")
    make_file(other_user, "theirs.txt", b"z" * 1000)
    make_batch(user, "Open one")

    page = client_user.get("/")
    assert page.status_code == 200
    counts = page.context["counts"]
    assert (counts.stored, counts.uploading, counts.expiring, counts.deleted_last_day) == (
        4,
        1,
        1,
        1,
    )
    assert counts.bytes_stored == 350
    html = page.content.decode()
    assert '<span class="value" id="bytes-stored">350\xa0bytes</span>' in html
    assert "mine-0.txt" in html and "theirs.txt" not in html
    assert "Open one" in html
    assert "Webhook delivery" not in html


def test_staff_see_delivery_health(client_staff, staff_user):
    endpoint, _ = endpoint_create(url="http://127.0.0.1:9/hook")
    make_file(staff_user, "a.txt")
    make_file(staff_user, "b.txt")
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    endpoint.failing_since = timezone.now()
    endpoint.save(update_fields=["failing_since"])

    page = client_staff.get("/")
    health = page.context["health"]
    assert health.pending == 2
    assert 290 < health.oldest_due_age_seconds < 400
    assert health.failing_endpoints == 1
    assert b"Webhook delivery" in page.content
    assert b"5 min ago" in page.content


def test_dashboard_query_count(client_staff, staff_user, django_assert_max_num_queries):
    endpoint_create(url="http://127.0.0.1:9/hook")
    batch = make_batch(staff_user)
    for i in range(20):
        make_file(staff_user, f"f{i}.txt", batch=batch if i % 2 else None)
    # 11: the quota override is looked up (usage is counted only under a quota).
    with django_assert_max_num_queries(11):
        page = client_staff.get("/")
    assert page.status_code == 200


def test_the_dashboard_reads_a_page_of_files_not_all_of_them(client_user, user):
    """At 1 000 000 files the aggregate over them was the dashboard's p95 (issue #23 #22):
    the numbers now come from the kept totals and a capped index count."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal.tests.plans import bulk_files, files_read_by

    bulk_files(user, 20_000, expires_in_hours=48)
    with CaptureQueriesContext(connection) as queries:
        page = client_user.get("/")
    assert page.status_code == 200
    counts = page.context["counts"]
    assert (counts.stored, counts.expiring, counts.bytes_stored) == (20_000, 0, 200_000)
    read = files_read_by(queries.captured_queries)
    assert read, "the recent files come from the files table"
    assert max(read.values()) <= 100, read


def test_expiring_files_are_counted_up_to_a_cap(client_user, user, monkeypatch):
    from portal import selectors

    monkeypatch.setattr(selectors, "EXPIRING_COUNT_CAP", 2)
    for i in range(3):
        make_file(user, f"soon-{i}.txt")
    UploadFile.objects.update(expires_at=timezone.now() + timedelta(minutes=10))
    page = client_user.get("/")
    assert (page.context["counts"].expiring, page.context["counts"].expiring_capped) == (2, True)
    assert b'id="count-expiring">2+<' in page.content


def test_the_dashboard_folds_an_owners_piled_up_totals(client_user, user, other_user, monkeypatch):
    from frontend.views import dashboard
    from portal.models import FileTotalsDelta

    monkeypatch.setattr(dashboard, "FOLD_OWNER_OVER", 1)
    for i in range(3):
        make_file(user, f"mine-{i}.txt", b"x" * 10)
    make_file(other_user, "theirs.txt")
    theirs = FileTotalsDelta.objects.filter(owner_id=other_user.pk).count()
    assert FileTotalsDelta.objects.filter(owner_id=user.pk).count() > 2

    client_user.get("/")
    assert FileTotalsDelta.objects.filter(owner_id=user.pk).count() == 1  # stored
    assert FileTotalsDelta.objects.filter(owner_id=other_user.pk).count() == theirs
    assert client_user.get("/").context["counts"].stored == 3


def test_sizes_are_in_iec_units_on_the_pages(client_user, user):
    big = make_file(user, "scan.tif", b"x" * (3 * 1024 * 1024 + 512 * 1024))
    for path in ("/", "/files/", f"/files/{big.id}/"):
        html = client_user.get(path).content.decode()
        assert "3.5\xa0MiB" in html, path
        assert "MB" not in html.replace("MiB", ""), path
    detail = client_user.get(f"/files/{big.id}/").content.decode()
    assert "3.5\xa0MiB (3\xa0670\xa0016\xa0bytes)" in detail


def test_staff_get_a_portal_wide_view_filterable_by_owner(
    client_staff, staff_user, user, other_user, django_assert_max_num_queries
):
    """#23.9: staff saw only their own files; now everyone's, or one owner's."""
    make_file(user, "user-file.txt", b"x" * 10)
    make_file(other_user, "other-file.txt", b"y" * 20)
    make_batch(other_user, "Their batch")

    own = client_staff.get("/").content.decode()
    assert "user-file.txt" not in own and 'id="count-stored">0<' in own
    assert "Everyone's files" in own

    with django_assert_max_num_queries(12):
        everyone = client_staff.get("/?everyone=1").content.decode()
    assert "user-file.txt" in everyone and "other-file.txt" in everyone
    assert 'id="count-stored">2<' in everyone
    assert user.email in everyone and other_user.email in everyone
    assert "Their batch" in everyone

    one = client_staff.get(f"/?owner={other_user.email.upper()}").content.decode()
    assert "other-file.txt" in one and "user-file.txt" not in one
    assert 'id="count-stored">1<' in one
    assert "Their batch" in one

    unknown = client_staff.get("/?everyone=1&owner=nobody@example.com").content.decode()
    assert "No user has this email address." in unknown
    assert 'id="count-stored">2<' in unknown


def test_non_staff_cannot_widen_the_dashboard(client_user, user, other_user):
    make_file(other_user, "other-file.txt")
    page = client_user.get(f"/?everyone=1&owner={other_user.email}").content.decode()
    assert "other-file.txt" not in page and 'id="count-stored">0<' in page
    assert "Everyone's files" not in page
