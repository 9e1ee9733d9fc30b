"""Times on the pages: the relative one and the exact one beside it, in the
reader's time zone (the browser's, sent in the ``doorito_tz`` cookie by
portal.js), and what the event log says an event is about."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from django.utils import timezone

from accounts.services.tokens import token_create
from common.services.emit import emit_event
from frontend.templatetags.portal import relative
from frontend.tests.helpers import make_batch, make_file
from portal.models import UploadFile

pytestmark = pytest.mark.django_db

# 2026-07-01 10:15 UTC: 12:15 in Berlin (CEST), 06:15 in New York (EDT).
MOMENT = dt.datetime(2026, 7, 1, 10, 15, 30, tzinfo=dt.UTC)


def _file_uploaded_at(user, when: dt.datetime) -> UploadFile:
    file = make_file(user, "scan.pdf")
    UploadFile.objects.filter(pk=file.pk).update(created_at=when)
    return file


@pytest.mark.parametrize(
    ("offset", "shown"),
    [
        # Just made: a 7-day request, a 2-hour link, a file kept for a day.
        (dt.timedelta(days=7, seconds=-1), "in 7 d"),
        (dt.timedelta(hours=2, seconds=-1), "in 2 h"),
        (dt.timedelta(days=1, seconds=-1), "in 1 d"),
        (dt.timedelta(minutes=59, seconds=40), "in 1 h"),
        (dt.timedelta(hours=1, minutes=20), "in 1 h"),
        (dt.timedelta(hours=13), "in 13 h"),
        (-dt.timedelta(minutes=5, seconds=20), "5 min ago"),
        (-dt.timedelta(minutes=4, seconds=40), "5 min ago"),
        (dt.timedelta(seconds=59), "just now"),
    ],
)
def test_relative_times_round_to_the_nearest_unit(offset, shown):
    assert relative(MOMENT + offset, now=MOMENT) == shown


def test_lists_show_the_exact_time_beside_the_relative_one_in_utc_by_default(client_user, user):
    _file_uploaded_at(user, MOMENT)
    html = client_user.get("/files/").content.decode()
    assert '<span class="exact">2026-07-01 10:15 UTC</span>' in html
    assert 'title="2026-07-01 10:15:30 UTC (UTC)"' in html
    assert "times in UTC" in html  # the footer says which zone


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("Europe/Berlin", r"2026-07-01 12:15(:30)? CEST"),
        ("America/New_York", r"2026-07-01 06:15(:30)? EDT"),
    ],
)
def test_times_are_in_the_zone_the_browser_reported(client_user, user, zone, shown):
    file = _file_uploaded_at(user, MOMENT)
    client_user.cookies["doorito_tz"] = zone
    # Lists to the minute, the file's own page to the second.
    for path in ("/", "/files/", f"/files/{file.id}/"):
        html = client_user.get(path).content.decode()
        assert re.search(f'<span class="exact">{shown}</span>', html), path
        assert f"times in {zone}" in html, path
    # The datetime attribute stays the instant itself, in UTC.
    assert 'datetime="2026-07-01T10:15:30+00:00"' in html


@pytest.mark.parametrize("cookie", ["Mars/Olympus", "../../etc/passwd", "UTC\x00", "x" * 200, ""])
def test_an_unknown_zone_is_ignored(client_user, user, cookie):
    _file_uploaded_at(user, MOMENT)
    client_user.cookies["doorito_tz"] = cookie
    page = client_user.get("/files/")
    assert page.status_code == 200
    assert "2026-07-01 10:15 UTC" in page.content.decode()


def test_date_filters_read_days_in_the_readers_zone(client_user, user):
    # 23:30 UTC on 30 June is already 1 July in Berlin.
    _file_uploaded_at(user, dt.datetime(2026, 6, 30, 23, 30, tzinfo=dt.UTC))
    client_user.cookies["doorito_tz"] = "Europe/Berlin"
    page = client_user.get("/files/?created_from=2026-07-01&created_to=2026-07-01")
    assert "scan.pdf" in page.content.decode()


def test_event_filters_say_and_use_the_readers_zone(client_staff, staff_user):
    event = emit_event(
        event_type="file.stored",
        aggregate_type="file",
        aggregate_id=uuid.uuid4(),
        payload={"file": {"filename": "a.txt"}},
    )
    at = dt.datetime(2026, 7, 1, 10, 0, tzinfo=dt.UTC)
    type(event).objects.filter(pk=event.pk).update(created_at=at)
    client_staff.cookies["doorito_tz"] = "Asia/Tokyo"  # UTC+9, no summer time
    page = client_staff.get("/events/?since=2026-07-01T18:30&until=2026-07-01T19:30")
    html = page.content.decode()
    assert "From (Asia/Tokyo)" in html
    assert f'id="event-{event.id}"' in html
    assert timezone.get_current_timezone_name() == "UTC"  # nothing leaks past the request


def test_the_api_keeps_speaking_utc(client_user, user):
    _file_uploaded_at(user, MOMENT)
    _token, raw = token_create(user=user, name="t")
    client_user.cookies["doorito_tz"] = "Europe/Berlin"
    body = client_user.get("/api/files", HTTP_AUTHORIZATION=f"Bearer {raw}").json()
    assert body["items"][0]["created_at"].startswith("2026-07-01T10:15:30")


def test_the_event_log_names_what_each_event_is_about(client_staff, staff_user):
    file = make_file(staff_user, "invoice-0042.pdf")
    batch = make_batch(staff_user, "Scans from Monday")
    emit_event(
        event_type="batch.completed",
        aggregate_type="batch",
        aggregate_id=batch.id,
        payload={"batch": {"id": str(batch.id), "metadata": {"name": "Scans from Monday"}}},
    )
    # An upload request's submission, by the request's title (it showed a cut id).
    request_id = uuid.uuid4()
    emit_event(
        event_type="upload_request.submitted",
        aggregate_type="upload_request",
        aggregate_id=request_id,
        payload={"upload_request": {"id": str(request_id), "title": "Signed contract"}},
    )
    html = client_staff.get("/events/").content.decode()
    assert ">invoice-0042.pdf</span>" in html
    assert ">Scans from Monday</span>" in html
    assert ">Signed contract</span>" in html
    assert str(request_id)[:10] + "…" not in html
    # Not the shortened id the list used to show for them.
    assert str(file.id)[:10] + "…" not in html
