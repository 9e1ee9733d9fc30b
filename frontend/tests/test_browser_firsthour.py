"""What a new user tripped over in the first hour (#23 items 1-4 and 9), seen
in a real Chromium at 1280 and 375 px: a batch closed early or empty, counters
after a delete, events nobody received, attempts after a re-send, and staff's
portal-wide view. Each page passes axe-core, fits the phone, and leaves a
screenshot (``.data/screenshots/firsthour-*``)."""

from __future__ import annotations

import io
import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from accounts.models import User
from common.models import WebhookDelivery, WebhookDeliveryAttempt
from common.services.webhooks import endpoint_create, endpoint_send_test_event
from frontend.tests.browser import axe_violations, horizontal_overflow, open_context, screenshot
from frontend.tests.conftest import PASSWORD
from portal.services.batches import batch_close, batch_create
from portal.services.file_records import upload_file_delete
from portal.services.uploads import upload_file_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.processes]


def _sign_in(page, email: str) -> None:
    page.goto("/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")


def _upload(owner, name: str, batch=None):
    return upload_file_create(
        owner=owner, stream=io.BytesIO(b"scan\n" * 100), filename=name, batch=batch
    )


def _seed() -> dict:
    staff = User.objects.create_user("ops@example.com", PASSWORD, is_staff=True)
    member = User.objects.create_user("member@example.com", PASSWORD)
    # Events written before any endpoint exists: nobody receives them.
    empty = batch_close(
        batch=batch_create(owner=staff, metadata={"name": "Nothing came"}), actor=staff
    )
    three = batch_create(owner=staff, metadata={"name": "Three scans"}, expected_files=3)
    _upload(staff, "scan-1.pdf", three)
    three = batch_close(batch=three, actor=staff)
    pair = batch_create(owner=staff, metadata={"name": "A pair"}, expected_files=2)
    kept = _upload(staff, "kept.pdf", pair)
    upload_file_delete(file=_upload(staff, "deleted.pdf", pair), actor=staff)
    _upload(member, "member-report.pdf")
    _upload(member, "member-invoice.pdf")

    endpoint, _ = endpoint_create(url="http://127.0.0.1:9/hooks/runner", description="runner")
    event = endpoint_send_test_event(endpoint=endpoint)
    delivery = WebhookDelivery.objects.get(event=event)
    # A failed attempt, then the re-send's first attempt, which succeeded.
    for number, code in [(1, 500), (1, 200)]:
        WebhookDeliveryAttempt.objects.create(
            delivery=delivery, attempt_number=number, status_code=code, duration_ms=12
        )
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="delivered", attempts=1)
    return {
        "empty": empty,
        "three": three,
        "pair": pair,
        "kept": kept,
        "delivery": delivery,
        "member": member,
    }


@pytest.mark.parametrize("width", [1280, 375])
def test_first_hour_pages(chromium, live_server, width):
    seeded = _seed()
    context, watch = open_context(chromium, live_server, width=width)
    found: list[str] = []
    try:
        page = context.new_page()
        _sign_in(page, "ops@example.com")

        def visit(path: str, name: str) -> None:
            page.goto(path)
            screenshot(page, f"firsthour-{name}-{width}")
            found.extend(axe_violations(page))
            if width == 375 and (wider := horizontal_overflow(page)) > 0:
                found.append(f"{path}: {wider} px wider than the phone")

        # 2: an empty batch closed: "Closed empty" and an empty bar.
        visit(f"/batches/{seeded['empty'].id}/", "batch-empty")
        expect(page.locator("#batch-status")).to_have_text("Closed empty")
        expect(page.locator("#batch-progress progress")).to_have_attribute("value", "0")

        # 1: closed after 1 of 3: says so, keeps 3 expected.
        visit(f"/batches/{seeded['three'].id}/", "batch-incomplete")
        expect(page.locator("#batch-status")).to_have_text("Closed with files missing")
        expect(page.locator("#files-expected")).to_have_text("3")
        expect(page.locator("#files-missing")).to_have_text("2")

        # 2: a deleted file leaves the stored count: 1 stored, 1 listed.
        visit(f"/batches/{seeded['pair'].id}/", "batch-after-delete")
        expect(page.locator("#files-stored")).to_have_text("1")
        expect(page.locator("#files-deleted")).to_have_text("1")
        expect(page.locator("#batch-files .filename")).to_have_count(1)

        visit("/batches/", "batches")
        expect(page.get_by_text("(2 missing)")).to_be_visible()

        # 3: events written with no endpoint are not "Delivered".
        visit("/events/?event_type=file.stored", "events-no-subscribers")
        badges = page.locator("#main-content table .badge, main table .badge")
        expect(badges.first).to_have_text("No subscribers")
        assert "Delivered" not in page.locator("main table").inner_text()

        # 4: after a re-send, attempts are #1 and #2.
        visit(f"/deliveries/{seeded['delivery'].id}/", "delivery-resent")
        numbers = page.locator("main table tbody tr td.num:first-child")
        texts = [re.match(r"\d+", t).group(0) for t in numbers.all_inner_texts()]
        assert texts == ["2", "1"]
        expect(page.get_by_text("try 1 after a re-send")).to_be_visible()

        # 9: staff's portal-wide view, and one owner's files.
        visit("/?everyone=1", "dashboard-everyone")
        expect(page.get_by_text("member-report.pdf")).to_be_visible()
        visit("/files/?everyone=1", "files-everyone")
        expect(page.get_by_role("columnheader", name="Owner")).to_be_visible()
        page.get_by_label("Owner's email").fill("member@example.com")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_url(re.compile(r"owner="))
        screenshot(page, f"firsthour-files-one-owner-{width}")
        expect(page.locator("#file-table tbody tr")).to_have_count(2)
        expect(page.get_by_text("kept.pdf")).to_have_count(0)
    finally:
        context.close()
    assert not found, "\n".join(found)
    assert not watch.problems(), "\n".join(watch.problems())
