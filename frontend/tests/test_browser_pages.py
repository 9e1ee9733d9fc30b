"""Every portal page in a real Chromium: renders without console errors (CSP
included), passes axe-core's WCAG 2.1 A/AA and best-practice rules (contrast
included), fits a 375 px phone, and leaves a screenshot (docs/img when
refreshed with `make screenshots`). The states a page reaches by use are
checked too: forms showing their errors, the batch progress after htmx
replaced it, a copy button just clicked."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import pytest
from django.template.loader import render_to_string
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import User
from accounts.services.tokens import token_create
from common.models import WebhookDelivery, WebhookDeliveryAttempt
from common.services.webhooks import endpoint_create, endpoint_send_test_event
from frontend.tests.browser import axe_violations, horizontal_overflow, open_context, screenshot
from frontend.tests.conftest import PASSWORD
from frontend.tests.helpers import make_batch, make_file
from portal.services.batches import batch_create
from portal.services.uploads import upload_file_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def sign_in(page, email: str) -> None:
    page.goto("/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")


def seed():
    staff = User.objects.create_user("ops@example.com", PASSWORD, is_staff=True)
    User.objects.create_user("member@example.com", PASSWORD)
    endpoint, _ = endpoint_create(url="http://127.0.0.1:9/hooks/doorito", description="runner")
    endpoint_create(
        url="http://127.0.0.1:9/hooks/archive", description="archive", event_types=["file.stored"]
    )
    batch = batch_create(owner=staff, metadata={"name": "Scans from Monday"}, expected_files=4)
    files = [
        upload_file_create(
            owner=staff,
            stream=io.BytesIO(f"invoice {i}\n".encode() * (200 * i + 1)),
            filename=f"invoice-{i:03}.txt",
            batch=batch if i < 3 else None,
        )
        for i in range(1, 7)
    ]
    token, _ = token_create(user=staff, name="ingest robot")
    event = endpoint_send_test_event(endpoint=endpoint)
    WebhookDelivery.objects.filter(event=event).update(
        status="failed",
        attempts=8,
        last_attempt_at=timezone.now(),
        last_status_code=503,
        last_duration_ms=41,
        last_response="upstream unavailable",
    )
    failed = WebhookDelivery.objects.get(event=event, endpoint=endpoint)
    for number, (code, body) in enumerate(
        [(None, ""), (500, "boom"), (503, "upstream unavailable")]
    ):
        WebhookDeliveryAttempt.objects.create(
            delivery=failed,
            attempt_number=number + 1,
            status_code=code,
            duration_ms=40 + number,
            error_class="" if code else "ConnectError",
            error="" if code else "connection refused",
            response_headers={"content-type": "text/plain"} if code else {},
            response_excerpt=body,
        )
    done = WebhookDelivery.objects.exclude(event=event).filter(endpoint=endpoint)
    WebhookDelivery.objects.filter(pk__in=list(done.values_list("pk", flat=True)[:3])).update(
        status="delivered",
        attempts=1,
        delivered_at=timezone.now(),
        last_attempt_at=timezone.now(),
        last_status_code=200,
        last_duration_ms=12,
        last_response="ok",
    )
    return staff, batch, files, endpoint, event, token


def test_every_page(chromium, live_server, settings) -> None:
    settings.SITE_URL = live_server.url
    staff, batch, files, endpoint, event, token = seed()
    pages = {
        "dashboard": "/",
        "upload-page": "/upload/",
        "files-list": "/files/",
        "file-page": f"/files/{files[0].id}/",
        "batches": "/batches/",
        "batch-detail": f"/batches/{batch.id}/",
        "batch-close": f"/batches/{batch.id}/close/",
        "batch-new": "/batches/new/",
        "file-delete-page": f"/files/{files[0].id}/delete/",
        "tokens": "/tokens/",
        "token-new": "/tokens/new/",
        "token-revoke": f"/tokens/{token.id}/revoke/",
        "webhooks": "/webhooks/",
        "endpoint-new": "/webhooks/new/",
        "endpoint-detail": f"/webhooks/{endpoint.id}/",
        "endpoint-edit": f"/webhooks/{endpoint.id}/edit/",
        "endpoint-rotate": f"/webhooks/{endpoint.id}/rotate/",
        "endpoint-delete": f"/webhooks/{endpoint.id}/delete/",
        "event-list": "/events/",
        "event-detail": f"/events/{event.id}/",
        "delivery-detail": f"/deliveries/{event.deliveries.first().id}/",
        "password-change": "/password/change/",
    }
    problems: dict[str, list[str]] = {}
    for width, suffix in ((1280, ""), (375, "-phone")):
        context, watch = open_context(chromium, live_server, width=width, height=800)
        try:
            page = context.new_page()
            sign_in(page, staff.email)
            for name, path in pages.items():
                page.goto(path)
                page.wait_for_load_state("networkidle")
                screenshot(page, name + suffix)
                found = axe_violations(page)
                if width == 375 and horizontal_overflow(page) > 0:
                    # Wide tables scroll inside their own box; the page must not.
                    found.append(f"page is {horizontal_overflow(page)} px wider than the phone")
                if found:
                    problems[name + suffix] = found
        finally:
            context.close()
        assert not watch.problems(), watch.problems()
    assert problems == {}, "\n".join(
        f"{name}: {line}" for name, lines in problems.items() for line in lines
    )


def test_forms_showing_their_errors(chromium, live_server) -> None:
    """Each form sent with bad values, as the page shows it then. A field with
    several errors must still have one element with the id its
    aria-describedby names (axe: duplicate-id-aria)."""
    staff, _batch, _files, endpoint, _event, _token = seed()
    context, watch = open_context(chromium, live_server)
    problems: dict[str, list[str]] = {}
    try:
        page = context.new_page()
        sign_in(page, staff.email)

        def check(name: str, errors: int) -> None:
            expect(page.locator(".field-error, .form-errors")).to_have_count(errors)
            screenshot(page, name)
            if found := axe_violations(page):
                problems[name] = found

        page.goto("/tokens/new/")
        page.get_by_role("button", name="Create token").click()
        check("token-new-errors", 1)

        page.goto("/batches/new/")
        page.get_by_label("Expected files").fill("0")
        page.get_by_role("button", name="Start batch and upload").click()
        check("batch-new-errors", 2)

        page.goto("/webhooks/new/")
        page.get_by_label("URL").fill("not a url")
        page.get_by_role("button", name="Add endpoint").click()
        check("endpoint-new-errors", 1)

        page.goto(f"/webhooks/{endpoint.id}/edit/")
        page.get_by_label("URL").fill("")
        page.get_by_role("button", name="Save").click()
        check("endpoint-edit-errors", 1)

        page.goto(f"/webhooks/{endpoint.id}/")
        page.get_by_text("Re-send failed deliveries").click()
        page.get_by_label("Failed since").fill("")
        page.get_by_role("button", name="Re-send all failed since then").click()
        check("endpoint-resend-errors", 1)

        page.goto("/password/change/")
        page.get_by_label("Old password").fill("not the password")
        page.get_by_label("New password", exact=True).fill("1234")
        page.get_by_label("New password confirmation").fill("1234")
        page.get_by_role("button", name="Change password").click()
        # The wrong old password, and the new one too short, too common, numeric.
        expect(page.locator(".field-error").first).to_be_visible()
        check("password-change-errors", page.locator(".field-error").count())

        page.goto("/upload/")
        page.get_by_text("Plain upload form").click()
        page.get_by_role("button", name="Upload", exact=True).click()
        # The plain form stays open after it was sent: its error is in sight.
        expect(page.locator("#id_file_error")).to_be_visible()
        check("upload-simple-errors", 1)

        page.goto("/files/?batch=nope&created_from=2030-02-01&created_to=2030-01-01&q=x")
        check("files-filter-errors", 2)

        page.goto("/events/?since=2030-02-01T00:00&until=2030-01-01T00:00")
        check("events-filter-errors", 1)
    finally:
        context.close()
    # The forms answer 400: the console reports that, and nothing else.
    assert all("400" in m for m in watch.console_errors), watch.console_errors
    assert not watch.page_errors and not watch.foreign_requests
    assert problems == {}, "\n".join(
        f"{name}: {line}" for name, lines in problems.items() for line in lines
    )


def test_batch_progress_after_htmx_swaps_it(chromium, live_server) -> None:
    """htmx replaces the progress block every 2 s while the batch is open; the
    live region announcing it stays (a region that is replaced announces
    nothing), and the page stays clean after each swap."""
    owner = User.objects.create_user("ops@example.com", PASSWORD)
    batch = make_batch(owner, "Live scans", expected_files=2)
    context, watch = open_context(chromium, live_server)
    try:
        page = context.new_page()
        sign_in(page, owner.email)
        page.goto(f"/batches/{batch.id}/")
        live = page.locator("[aria-live]")
        expect(live).to_have_count(1)
        region = live.element_handle()
        assert axe_violations(page) == []
        # Nothing changed: the poll answers 204 and htmx swaps (announces) nothing.
        page.evaluate(
            "() => { window.swaps = 0;"
            " document.body.addEventListener('htmx:afterSwap', () => window.swaps++); }"
        )
        with page.expect_response(lambda response: "/progress/" in response.url) as polled:
            pass
        assert polled.value.status == 204
        assert page.evaluate("() => window.swaps") == 0

        make_file(owner, "first.txt", batch=batch)
        expect(page.locator("#files-stored")).to_have_text("1")
        assert page.evaluate("() => window.swaps") == 1
        assert region.evaluate("element => element.isConnected")
        assert axe_violations(page) == []

        make_file(owner, "second.txt", batch=batch)
        expect(page.locator("#batch-status")).to_have_text("Complete")
        assert region.evaluate("element => element.isConnected")
        # Ended: the block that came last polls no more.
        expect(page.locator("[hx-get]")).to_have_count(0)
        screenshot(page, "batch-detail-ended")
        assert axe_violations(page) == []
    finally:
        context.close()
    assert not watch.problems(), watch.problems()


def test_copy_buttons_report_what_they_did(chromium, live_server) -> None:
    """A copy button keeps its name; what it did ("Copied") is said in a
    status region beside it, which screen readers announce."""
    staff, _batch, files, endpoint, _event, _token = seed()
    context, watch = open_context(chromium, live_server)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    problems: dict[str, list[str]] = {}
    try:
        page = context.new_page()
        sign_in(page, staff.email)

        def copy(button: str, value_id: str, shot: str = "") -> None:
            page.get_by_role("button", name=button).click()
            status = page.locator(f"#{value_id}-status")
            expect(status).to_have_text("Copied")
            expect(status).to_have_attribute("role", "status")
            value = page.locator(f"#{value_id}").inner_text().strip()
            assert page.evaluate("() => navigator.clipboard.readText()") == value
            # The name stays what it was: the change is announced, not renamed.
            expect(page.get_by_role("button", name=button)).to_have_count(1)
            if shot:
                screenshot(page, shot)
            if found := axe_violations(page):
                problems[f"{page.url} {button}"] = found
            expect(status).to_have_text("")

        page.goto("/tokens/")
        page.get_by_label("Name").fill("laptop")
        page.get_by_role("button", name="Create token").click()
        copy("Copy token", "token-value", shot="token-copied")
        copy("Copy curl command", "token-curl")

        page.goto("/webhooks/new/")
        page.get_by_label("URL").fill("http://127.0.0.1:9/hooks/copy")
        page.get_by_role("button", name="Add endpoint").click()
        copy("Copy signing secret", "secret-value")

        page.goto(f"/webhooks/{endpoint.id}/rotate/")
        page.get_by_role("button", name="Rotate secret").click()
        copy("Copy signing secret", "secret-value")

        page.goto(f"/files/{files[0].id}/")
        copy("Copy SHA-256", "sha256")

        page.goto(f"/batches/{files[0].batch_id}/")
        copy("Copy batch id", "batch-id")
    finally:
        context.close()
    assert not watch.problems(), watch.problems()
    assert problems == {}, "\n".join(
        f"{name}: {line}" for name, lines in problems.items() for line in lines
    )


def test_error_pages_in_the_portal_layout(chromium, live_server):
    User.objects.create_user("member@example.com", PASSWORD)
    context, watch = open_context(chromium, live_server)
    try:
        page = context.new_page()
        sign_in(page, "member@example.com")
        response = page.goto("/webhooks/")
        assert response.status == 403
        assert page.get_by_role("heading", name="Not allowed").is_visible()
        assert page.get_by_role("link", name="Webhooks").count() == 0
        screenshot(page, "forbidden")
        assert axe_violations(page) == []
        response = page.goto("/files/00000000-0000-0000-0000-000000000000/")
        assert response.status == 404
        assert page.get_by_role("heading", name="Not found").is_visible()
        screenshot(page, "not-found")
        assert axe_violations(page) == []
        # No URL fails on purpose: the 500 page (frontend.views.errors) is
        # served in place of one, its styles from the live server.
        page.route(
            "**/broken/",
            lambda route: route.fulfill(
                status=500,
                content_type="text/html",
                body=render_to_string("frontend/errors/500.html"),
            ),
        )
        response = page.goto("/broken/")
        assert response.status == 500
        assert page.get_by_role("heading", name="Something went wrong").is_visible()
        screenshot(page, "server-error")
        assert axe_violations(page) == []
    finally:
        context.close()
    # The 403, 404 and 500 themselves are the only errors the console may show.
    assert all(any(code in m for code in ("403", "404", "500")) for m in watch.console_errors), (
        watch.console_errors
    )
    assert not watch.page_errors and not watch.foreign_requests
