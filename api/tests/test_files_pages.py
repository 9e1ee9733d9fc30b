"""The files list at scale: kept totals instead of a count, keyset pages (`next`/`cursor`),
and what a page reads of a big table (issue #23 #22)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from api import pagination
from api.tests.conftest import assert_error
from api.tests.test_files_api import upload
from portal.models import UploadFile
from portal.tests.plans import bulk_files, files_read_by

pytestmark = pytest.mark.django_db


def walk(api, query: str) -> list[str]:
    """Every id of a list, following `next` from the first page."""
    ids: list[str] = []
    page = api.get(f"/api/files?{query}").json()
    while True:
        ids += [f["id"] for f in page["items"]]
        if page["next"] is None:
            return ids
        page = api.get(f"/api/files?{query}&cursor={page['next']}").json()


def test_cursor_pages_cover_every_file_once_in_order_ties_included(api):
    ids = [upload(api, f"{i}".encode(), f"{i}.txt").json()["id"] for i in range(7)]
    # Three files written in the same microsecond: the id breaks the tie.
    same = timezone.now() - timedelta(hours=1)
    UploadFile.objects.filter(pk__in=ids[2:5]).update(created_at=same)
    by_offset = [f["id"] for f in api.get("/api/files?limit=200").json()["items"]]
    assert sorted(by_offset) == sorted(ids)

    assert walk(api, "limit=2") == by_offset
    assert walk(api, "limit=3&q=.txt") == by_offset
    first = api.get("/api/files?limit=7").json()
    assert first["next"] is None and first["count"] == 7


def test_a_cursor_keeps_the_filters_and_the_count_stays_the_whole_list(api):
    for i in range(4):
        upload(api, f"{i}".encode(), f"{i}.txt")
    UploadFile.objects.filter(filename="0.txt").update(status=UploadFile.Status.FAILED)
    page = api.get("/api/files?status=stored&limit=2").json()
    assert page["count"] == 3 and len(page["items"]) == 2
    rest = api.get(f"/api/files?status=stored&limit=2&cursor={page['next']}").json()
    assert rest["count"] == 3 and [f["filename"] for f in rest["items"]] == ["1.txt"]
    assert rest["next"] is None


def test_bad_cursors_are_400_naming_the_field(api):
    upload(api)
    for bad in ("x", "bm90IGEgY3Vyc29y", "MjAyNi0wMS0wMVQwMDowMDowMCBub3QtYS11dWlk", "é"):
        body = assert_error(api.get(f"/api/files?cursor={bad}"), 400, "validation_error")
        assert "cursor" in json.dumps(body["details"])  # the schema's or the decoder's words
    good = api.get("/api/files?limit=1").json()
    assert good["next"] is None  # one file
    upload(api)
    cursor = api.get("/api/files?limit=1").json()["next"]
    body = assert_error(api.get(f"/api/files?cursor={cursor}&offset=1"), 400, "validation_error")
    assert body["details"]["field"] == "offset"


def test_counts_come_from_the_kept_totals_or_stop_at_the_cap(
    api, staff_api, other_api, monkeypatch
):
    for i in range(3):
        upload(api, f"{i}".encode(), f"doc-{i}.txt")
    upload(other_api, b"theirs", "theirs.txt")
    monkeypatch.setattr(pagination, "COUNT_CAP", 2)
    # Kept: exact however many.
    assert api.get("/api/files").json()["count"] == 3
    assert api.get("/api/files?status=stored").json()["count"] == 3
    assert api.get("/api/files?status=failed").json()["count"] == 0
    assert staff_api.get("/api/files").json()["count"] == 4  # staff list everyone's
    # Counted: exact up to the cap, null past it.
    assert api.get("/api/files?q=doc-1").json()["count"] == 1
    assert api.get("/api/files?q=doc").json()["count"] is None
    assert api.get("/api/files?q=doc&limit=1").json()["next"] is not None


def test_a_page_reads_a_page_of_files_however_many_there_are(api, user):
    """GET /api/files counted all 1 000 000 files for every page (8 requests/s)."""
    bulk_files(user, 20_000)
    with CaptureQueriesContext(connection) as queries:
        first = api.get("/api/files?limit=50").json()
    assert first["count"] == 20_000 and len(first["items"]) == 50
    read = files_read_by(queries.captured_queries)
    assert read and max(read.values()) <= 100, read  # a page (and the incremental sort's next row)

    # Deep in the list, the cursor starts the index scan where the page starts.
    deep = UploadFile.objects.order_by("-created_at", "-id")[15_000]
    cursor = pagination._cursor_encode(deep)
    with CaptureQueriesContext(connection) as queries:
        page = api.get(f"/api/files?limit=50&cursor={cursor}").json()
    assert page["items"][0]["id"] != str(deep.pk) and len(page["items"]) == 50
    read = files_read_by(queries.captured_queries)
    assert read and max(read.values()) <= 100, read  # a page (and the incremental sort's next row)
