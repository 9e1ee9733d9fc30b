"""Every portal page in a real Chromium: renders without console errors (CSP
included), text meets WCAG AA contrast, fits a 375 px phone, and leaves a
screenshot (docs/img when refreshed with `make screenshots`)."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from accounts.models import User
from accounts.services.tokens import token_create
from common.models import WebhookDelivery, WebhookDeliveryAttempt
from common.services.webhooks import endpoint_create, endpoint_send_test_event
from frontend.tests.browser import horizontal_overflow, low_contrast_text, open_context, screenshot
from frontend.tests.conftest import PASSWORD
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
    token_create(user=staff, name="ingest robot")
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
    return staff, batch, files, endpoint, event


def test_every_page(chromium, live_server, settings) -> None:
    settings.SITE_URL = live_server.url
    staff, batch, files, endpoint, event = seed()
    pages = {
        "dashboard": "/",
        "upload-page": "/upload/",
        "files-list": "/files/",
        "file-page": f"/files/{files[0].id}/",
        "batches": "/batches/",
        "batch-detail": f"/batches/{batch.id}/",
        "batch-close": f"/batches/{batch.id}/close/",
        "tokens": "/tokens/",
        "webhooks": "/webhooks/",
        "endpoint-new": "/webhooks/new/",
        "endpoint-detail": f"/webhooks/{endpoint.id}/",
        "endpoint-edit": f"/webhooks/{endpoint.id}/edit/",
        "endpoint-rotate": f"/webhooks/{endpoint.id}/rotate/",
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
                found = low_contrast_text(page)
                if width == 375 and horizontal_overflow(page) > 0:
                    # Wide tables scroll inside their own box; the page must not.
                    found.append(f"page is {horizontal_overflow(page)} px wider than the phone")
                if found:
                    problems[name + suffix] = found
        finally:
            context.close()
        assert not watch.problems(), watch.problems()
    assert problems == {}


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
        response = page.goto("/files/00000000-0000-0000-0000-000000000000/")
        assert response.status == 404
        assert page.get_by_role("heading", name="Not found").is_visible()
        assert low_contrast_text(page) == []
        screenshot(page, "not-found")
    finally:
        context.close()
    # The 403 and 404 themselves are the only errors the console may show.
    assert all(("403" in m or "404" in m) for m in watch.console_errors), watch.console_errors
    assert not watch.page_errors and not watch.foreign_requests
