"""Layout and keyboard in a real Chromium, at 1280 px and on a 375 px phone
(#23: sizes that broke across lines, cut-off date inputs, tables that hid
size and expiry off-screen, very tall delivery-log rows, the focus that left
the upload area, focus rings that were only an underline).

Each check measures what a person would see (line boxes, element boxes
against the viewport, the focused element, the computed outline) and leaves
screenshots in .data/screenshots (docs/img with `make screenshots`).
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from playwright.sync_api import expect

from accounts.models import User
from common.models import WebhookDelivery, WebhookDeliveryAttempt
from common.services.webhooks import endpoint_create, endpoint_send_test_event
from frontend.tests.browser import axe_violations, horizontal_overflow, open_context, screenshot
from frontend.tests.conftest import PASSWORD
from frontend.tests.test_browser_pages import sign_in
from portal.models import UploadFile
from portal.services.batches import batch_create
from portal.services.uploads import upload_file_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

WIDTHS = ((1280, ""), (375, "-phone"))
# 603.4 MiB: the dashboard's total that broke as "603.0 M" / "B".
BIG = 632_700_000


def seed() -> tuple[User, Any]:
    staff = User.objects.create_user("ops@example.com", PASSWORD, is_staff=True)
    batch = batch_create(owner=staff, metadata={"name": "Scans from Monday"}, expected_files=3)
    files = [
        upload_file_create(
            owner=staff,
            stream=io.BytesIO(b"scan\n" * (100 * i + 1)),
            filename=f"quarterly-report-{i:03}-final-version.pdf",
            batch=batch if i < 3 else None,
        )
        for i in range(1, 6)
    ]
    # The sizes a real portal has, without writing the bytes.
    UploadFile.objects.filter(pk=files[0].pk).update(size=BIG)
    endpoint, _ = endpoint_create(url="http://127.0.0.1:9/hooks/doorito", description="runner")
    event = endpoint_send_test_event(endpoint=endpoint)
    WebhookDelivery.objects.filter(event=event).update(status="failed", attempts=3)
    delivery = WebhookDelivery.objects.get(event=event)
    for number, code in enumerate([None, 500, 503], start=1):
        WebhookDeliveryAttempt.objects.create(
            delivery=delivery,
            attempt_number=number,
            status_code=code,
            duration_ms=40 + number,
            error_class="" if code else "ConnectError",
            error="" if code else "connection refused",
            response_excerpt="upstream unavailable" if code else "",
        )
    return staff, endpoint


# How many line boxes the text of the first element matching `selector` takes.
LINES = """(selector) => {
  const range = document.createRange();
  range.selectNodeContents(document.querySelector(selector));
  const rects = [...range.getClientRects()].filter((r) => r.width > 0);
  return new Set(rects.map((r) => Math.round(r.top))).size;
}"""

# Boxes of elements, as plain numbers.
BOXES = """(selector) => [...document.querySelectorAll(selector)].map((e) => {
  const r = e.getBoundingClientRect();
  return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, height: r.height,
          width: r.width, scrollWidth: e.scrollWidth, clientWidth: e.clientWidth};
})"""


def boxes(page, selector: str) -> list[dict]:
    return page.evaluate(BOXES, selector)


def test_dashboard_numbers_and_labels_stay_whole(chromium, live_server) -> None:
    staff, _endpoint = seed()
    for width, suffix in WIDTHS:
        context, watch = open_context(chromium, live_server, width=width, height=900)
        try:
            page = context.new_page()
            sign_in(page, staff.email)
            expect(page.locator("#bytes-stored")).to_have_text("603.4\xa0MiB")
            screenshot(page, "layout-dashboard" + suffix)
            assert page.evaluate(LINES, "#bytes-stored") == 1, width
            # "expiring within 24 h": the number stays with its unit.
            assert page.evaluate(LINES, "#count-expiring + .label .nowrap") == 1, width
            assert horizontal_overflow(page) == 0
            assert axe_violations(page) == []
        finally:
            context.close()
        assert not watch.problems(), watch.problems()


def test_events_filters_fit_and_line_up(chromium, live_server) -> None:
    staff, _endpoint = seed()
    for width, suffix in WIDTHS:
        context, watch = open_context(chromium, live_server, width=width, height=900)
        try:
            page = context.new_page()
            sign_in(page, staff.email)
            page.goto("/events/")
            page.get_by_label("From").fill("2026-01-31T14:00")
            screenshot(page, "layout-events" + suffix)
            # The date inputs show their whole value (Chromium draws the
            # date, the time and the picker icon inside the box).
            for box in boxes(page, "input[type=datetime-local]"):
                assert box["width"] >= 200, (width, box)
                assert box["right"] <= width, (width, box)
            # Filter sits on the line of the fields it sends, as tall as they are.
            field = boxes(page, "#id_status")[0]
            button = boxes(page, "form.filters button[type=submit]")[0]
            if width == 1280:
                assert abs(button["bottom"] - field["bottom"]) <= 1, (field, button)
            assert abs(button["height"] - field["height"]) <= 1, (field, button)
            # The list names the file or endpoint, not a shortened id.
            assert "…" not in page.locator("td.subject").first.inner_text()
            assert horizontal_overflow(page) == 0
            assert axe_violations(page) == []
        finally:
            context.close()
        assert not watch.problems(), watch.problems()


def test_phone_shows_every_column_of_files_and_delivery_logs(chromium, live_server) -> None:
    staff, endpoint = seed()
    context, watch = open_context(chromium, live_server, width=375, height=800)
    try:
        page = context.new_page()
        sign_in(page, staff.email)
        for name, path, table in [
            ("files", "/files/", "#file-table"),
            ("dashboard", "/", "#recent-heading + .table-wrap table"),
            ("endpoint-log", f"/webhooks/{endpoint.id}/", "#log-heading ~ .table-wrap table"),
        ]:
            page.goto(path)
            screenshot(page, f"layout-{name}-phone")
            wrap = boxes(page, f"{table}")[0]
            assert wrap["scrollWidth"] <= wrap["clientWidth"] + 1, (name, wrap)
            # Every cell of every row is on the screen: size and expiry too.
            for cell in boxes(page, f"{table} tbody td"):
                assert cell["left"] >= 0 and cell["right"] <= 375, (name, cell)
            # Each cell says what it is, as the header row would.
            # (Not the name, which heads the card, nor the Files page's tick box.)
            labels = page.evaluate(
                f"""() => [...document.querySelectorAll(
                        '{table} tbody tr:first-child td:not(.select-col)')]
                    .map((td) => getComputedStyle(td, '::before').content)"""
            )
            assert labels[1:] and all(label not in ("none", '""') for label in labels[1:]), labels
            assert horizontal_overflow(page) == 0
            assert axe_violations(page) == [], name
        # A delivery with three attempts: a compact card, not a tower.
        page.goto(f"/webhooks/{endpoint.id}/")
        rows = boxes(page, "#log-heading ~ .table-wrap tbody tr")
        assert rows and all(row["height"] <= 420 for row in rows), rows
        page.goto("/files/")
        expect(page.locator("#file-table tbody tr").last).to_contain_text("603.4\xa0MiB")
    finally:
        context.close()
    assert not watch.problems(), watch.problems()


@pytest.mark.parametrize(("width", "suffix"), WIDTHS)
def test_upload_keeps_the_keyboard_in_the_upload_area(
    chromium, live_server, tmp_path, width, suffix
) -> None:
    staff, _endpoint = seed()
    document = tmp_path / "notes.txt"
    document.write_bytes(b"x" * (1536 * 1024))  # 1.5 MiB
    context, watch = open_context(chromium, live_server, width=width, height=900)
    try:
        page = context.new_page()
        sign_in(page, staff.email)
        page.goto("/upload/")
        # Choose a file from the keyboard: Enter on "browse files".
        page.wait_for_load_state("networkidle")  # Uppy has drawn (and restored nothing)
        expect(page.locator(".uppy-Dashboard-note")).to_have_text("Up to 5\xa0GiB per file")
        with page.expect_file_chooser() as chooser:
            # Focus and Enter in one step, on the button as it is now.
            page.locator(".uppy-Dashboard-browse").first.press("Enter")
        chooser.value.set_files(str(document))
        expect(page.get_by_role("button", name="Upload 1 file")).to_be_visible()
        # Uppy's own size label, in the portal's units.
        # As shown (innerText), not only as written: Uppy's CSS upper-cases it ("1.5 MIB").
        expect(page.locator(".uppy-Dashboard-Item-statusSize")).to_have_text(
            "1.5 MiB", use_inner_text=True
        )
        # Focus is still in the upload area, not in the batch form below.
        assert page.evaluate("() => !!document.activeElement.closest('[data-uploader]')"), (
            page.evaluate("() => document.activeElement.outerHTML.slice(0, 200)")
        )
        tabs = 0
        while not page.evaluate(
            "() => document.activeElement.matches('.uppy-StatusBar-actionBtn--upload')"
        ):
            tabs += 1
            assert tabs <= 4, "'Upload 1 file' is more than 4 Tabs away"
            page.keyboard.press("Tab")
        screenshot(page, "layout-upload-chosen" + suffix)
        page.keyboard.press("Enter")
        expect(page.locator("[data-upload-results] a")).to_have_text("notes.txt")
    finally:
        context.close()
    assert not watch.problems(), watch.problems()


# The right (or left) edge of each entry's text in the open user menu.
MENU_TEXT_EDGES = """() => [...document.querySelectorAll('details.dropdown li')].map((li) => {
  const texts = document.createTreeWalker(li, NodeFilter.SHOW_TEXT);
  const rects = [];
  while (texts.nextNode()) {
    if (!texts.currentNode.data.trim()) continue;
    const range = document.createRange();
    range.selectNodeContents(texts.currentNode);
    rects.push(...[...range.getClientRects()].filter((r) => r.width > 0));
  }
  return {text: li.textContent.trim(), left: Math.min(...rects.map((r) => r.left)),
          right: Math.max(...rects.map((r) => r.right))};
})"""


@pytest.mark.parametrize(("width", "suffix"), WIDTHS)
def test_the_user_menus_entries_line_up(chromium, live_server, width, suffix) -> None:
    # "Sign out" (a form's button) sat in the middle of the menu, under
    # right-aligned "Change password" and "API docs".
    staff, _endpoint = seed()
    context, watch = open_context(chromium, live_server, width=width, height=900)
    try:
        page = context.new_page()
        sign_in(page, staff.email)
        page.locator("details.dropdown summary").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        edges = page.evaluate(MENU_TEXT_EDGES)
        assert [e["text"] for e in edges][-1] == "Sign out", edges
        rights = [e["right"] for e in edges]
        lefts = [e["left"] for e in edges]
        assert max(rights) - min(rights) <= 2 or max(lefts) - min(lefts) <= 2, edges
        screenshot(page, "layout-user-menu" + suffix)
        assert axe_violations(page) == []
    finally:
        context.close()
    assert not watch.problems(), watch.problems()


def test_links_and_buttons_show_a_focus_ring(chromium, live_server) -> None:
    staff, _endpoint = seed()
    for width, suffix in WIDTHS:
        context, watch = open_context(chromium, live_server, width=width, height=900)
        try:
            page = context.new_page()
            sign_in(page, staff.email)
            page.goto("/files/")
            seen = set()
            # Tab through the page as a keyboard user does.
            for _ in range(40):
                page.keyboard.press("Tab")
                focused = page.evaluate(
                    """() => {
                      const e = document.activeElement, s = getComputedStyle(e);
                      return {tag: e.tagName, text: (e.textContent || '').trim().slice(0, 40),
                              style: s.outlineStyle, width: parseFloat(s.outlineWidth)};
                    }"""
                )
                if focused["tag"] not in ("A", "BUTTON"):
                    continue
                seen.add(focused["tag"])
                assert focused["style"] == "solid" and focused["width"] >= 2, focused
                if focused["tag"] == "A" and "ring" + suffix not in seen:
                    seen.add("ring" + suffix)
                    screenshot(page, "layout-focus-ring" + suffix)
            assert {"A", "BUTTON"} <= seen, seen
        finally:
            context.close()
        assert not watch.problems(), watch.problems()


def test_times_follow_the_browsers_time_zone(chromium, live_server) -> None:
    staff, _endpoint = seed()
    context, watch = open_context(chromium, live_server, timezone_id="Asia/Tokyo")
    try:
        page = context.new_page()
        sign_in(page, staff.email)  # the sign-in page already told the server
        page.goto("/files/")
        expect(page.locator("#time-zone")).to_have_text("times in Asia/Tokyo")
        exact = page.locator("#file-table tbody tr").first.locator(".exact").first
        expect(exact).to_contain_text("JST")
        expect(page.get_by_label("Uploaded from")).to_be_visible()
        screenshot(page, "layout-files-tokyo")
    finally:
        context.close()
    assert not watch.problems(), watch.problems()
