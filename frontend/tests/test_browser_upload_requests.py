"""An outsider's journey through an upload request in a real Chromium, no account.

The password, the sender's name and email, an upload with the portal's
Uppy + tus engine (authorised by the request credential only), the
thank-you page; a byte limit refused by the server; a revoked link. Each
step is photographed at 1280 px and at 375 px (docs/img/request-*.png).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from frontend.tests.browser import axe_violations, horizontal_overflow, open_context, screenshot
from frontend.tests.conftest import PASSWORD
from frontend.tests.test_browser_journey import add_files, wait_until
from portal.models import UploadFile, UploadRequestSubmission
from portal.services.upload_requests import upload_request_create, upload_request_revoke

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.processes]

# Uppy's own markup, not the portal's (as in the portal's journey test).
UPPY = (".uppy-Dashboard",)
UPLOAD_BUTTON = ".uppy-StatusBar-actionBtn--upload"
EXPECTED_CONSOLE = re.compile(
    r"the server responded with a status of (400|410|413)"
    r"|tus: unexpected response while creating upload.*response code: (410|413)"
)


@pytest.fixture
def outsider(chromium, live_server, request):
    """A fresh browser profile with no account; its watch is checked at the end."""
    width = getattr(request, "param", 1280)
    context, watch = open_context(chromium, live_server, width=width, height=900)
    try:
        yield context.new_page(), watch, width
    finally:
        context.close()
    # A wrong password (400), a refused upload (413) and a closed link (410)
    # are the story of these tests; nothing else may go wrong.
    unexpected = [p for p in watch.problems() if not EXPECTED_CONSOLE.search(p)]
    assert not unexpected, "\n".join(unexpected)


def _suffix(width: int) -> str:
    return "" if width == 1280 else "-phone"


@pytest.mark.parametrize("outsider", [1280, 375], indirect=True)
def test_password_sender_upload_and_thanks(outsider, user, tmp_path, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    page, _, width = outsider
    upload_request, raw = upload_request_create(
        owner=user,
        title="Signed contract",
        message="Please send the signed contract and a copy of your ID.",
        password="harbour-lights",
        require_sender=True,
        max_files=5,
    )
    page.goto(f"/r/{raw}/")
    expect(page.get_by_role("heading", name="Signed contract")).to_be_visible()
    assert axe_violations(page) == []
    assert horizontal_overflow(page) == 0
    screenshot(page, f"request-password{_suffix(width)}")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("That is not the password.")).to_be_visible()
    page.get_by_label("Password").fill("harbour-lights")
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_label("Your name")).to_be_visible()
    assert horizontal_overflow(page) == 0
    # The Limits box lines up with the form's card above it.
    card = page.locator("article", has=page.get_by_label("Your name")).bounding_box()
    limits = page.locator("article", has=page.locator("#request-limits")).bounding_box()
    assert card and limits
    assert abs(card["x"] - limits["x"]) <= 1 and abs(card["width"] - limits["width"]) <= 1, (
        card,
        limits,
    )
    screenshot(page, f"request-sender{_suffix(width)}")
    page.get_by_label("Your name").fill("Dana Sender")
    page.get_by_label("Your email").fill("dana@example.com")
    page.get_by_role("button", name="Continue to upload").click()

    page.wait_for_selector(".uppy-Dashboard")
    expect(page.get_by_text("Sending as Dana Sender")).to_be_visible()
    assert axe_violations(page, exclude=UPPY) == []
    assert horizontal_overflow(page) == 0
    first, second = tmp_path / "contract.pdf", tmp_path / "id-card.txt"
    first.write_bytes(b"%PDF-1.4\n" + os.urandom(30_000))
    second.write_text("ID card number 1234\n")
    add_files(page, first, second)
    expect(page.locator(".uppy-Dashboard-Item")).to_have_count(2)
    screenshot(page, f"request-upload{_suffix(width)}")
    page.locator(UPLOAD_BUTTON).click()

    # Every file in: the page sends them itself and thanks the sender.
    expect(page.get_by_role("heading", name="Thank you — your files were sent")).to_be_visible(
        timeout=60_000
    )
    expect(page.locator("#sent-files li")).to_have_count(2)
    assert horizontal_overflow(page) == 0
    screenshot(page, f"request-sent{_suffix(width)}")
    files = UploadFile.objects.filter(upload_request=upload_request, status="stored")
    assert sorted(files.values_list("filename", flat=True)) == ["contract.pdf", "id-card.txt"]
    assert set(files.values_list("sender_email", flat=True)) == {"dana@example.com"}
    submission = UploadRequestSubmission.objects.get(request=upload_request)
    assert submission.submitted_at is not None
    from django.core import mail

    assert [m.subject for m in mail.outbox] == ["Files received: Signed contract"]

    # The owner sees the submission on the request's page.
    page.goto("/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")
    page.goto("/requests/")
    expect(page.get_by_role("link", name="Signed contract")).to_be_visible()
    assert axe_violations(page) == []
    assert horizontal_overflow(page) == 0
    screenshot(page, f"requests{_suffix(width)}")
    page.get_by_role("link", name="Signed contract").click()
    expect(page.get_by_text("dana@example.com")).to_be_visible()
    expect(page.get_by_text("2 stored")).to_be_visible()
    # Revoking is one click: an outlined button of its own width, not a full-width bar.
    revoke = page.get_by_role("button", name="Revoke this link").bounding_box()
    assert revoke and revoke["width"] < width / 2, revoke
    assert axe_violations(page) == []
    assert horizontal_overflow(page) == 0
    # The submissions table fits a phone: every cell on screen, none scrolled away.
    cells = page.evaluate(
        """() => [...document.querySelectorAll('#submissions tbody td')].map(
            (td) => td.getBoundingClientRect().right)"""
    )
    assert cells and max(cells) <= width, cells
    screenshot(page, f"request-detail{_suffix(width)}")


def test_the_server_refuses_a_file_over_the_links_byte_limit(outsider, user, tmp_path):
    page, _, _width = outsider
    _, raw = upload_request_create(owner=user, title="Small scans only", max_bytes=10_000)
    page.goto(f"/r/{raw}/")
    page.get_by_role("button", name="Continue to upload").click()  # name and email optional
    page.wait_for_selector(".uppy-Dashboard")
    expect(page.locator("#request-limits")).to_contain_text("9.8")  # 10 000 bytes, 9.8 KiB
    # Uppy's note names the per-file limit (it read "Up to  per file" here).
    expect(page.locator(".uppy-Dashboard-note")).to_have_text("Up to 5\xa0GiB per file")
    big = tmp_path / "scan.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(20_000))
    add_files(page, big)
    page.locator(UPLOAD_BUTTON).click()
    # The file shows the server's refusal (its error button's name), and so does the info line.
    refusal = re.compile("This link takes at most 10000 bytes in all")
    expect(page.get_by_role("button", name=refusal)).to_be_visible(timeout=30_000)
    screenshot(page, "request-limit")
    assert not UploadFile.objects.filter(status="stored").exists()


def test_a_revoked_link_shows_that_it_is_closed(outsider, user, tmp_path):
    page, _, _width = outsider
    upload_request, raw = upload_request_create(owner=user, title="Old request")
    page.goto(f"/r/{raw}/")
    page.get_by_role("button", name="Continue to upload").click()
    page.wait_for_selector(".uppy-Dashboard")
    upload_request_revoke(upload_request=upload_request, actor=user)
    # The open page's next upload is refused by the server ...
    late = tmp_path / "late.txt"
    late.write_text("too late\n")
    add_files(page, late)
    page.locator(UPLOAD_BUTTON).click()
    revoked = re.compile("This upload link was revoked by its owner")
    expect(page.get_by_role("button", name=revoked)).to_be_visible(timeout=30_000)
    # ... and the page itself now says the link is closed (410).
    answer = page.goto(f"/r/{raw}/")
    assert answer is not None and answer.status == 410
    expect(page.get_by_role("heading", name="This link no longer takes files")).to_be_visible()
    assert axe_violations(page) == []
    screenshot(page, "request-revoked")
    wait_until(lambda: not UploadFile.objects.filter(status="stored").exists())
    assert not Path(tmp_path / "never").exists()
