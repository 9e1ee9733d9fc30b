"""In a real browser: the upload page shows the upload hook's refusal, and a
file the scanner quarantined says so on its page (screenshots, axe)."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from accounts.models import User
from common.tests.receivers import Reply
from frontend.tests.browser import axe_violations, screenshot
from frontend.tests.conftest import PASSWORD
from frontend.tests.test_browser_pages import sign_in
from portal.models import UploadFile
from portal.services.verification import verify_file
from scripts.private_clamd import EICAR, SIGNATURE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.processes]


def test_upload_page_shows_the_hooks_refusal(browser_context, receiver, settings, tmp_path):
    settings.UPLOAD_HOOK_URL = receiver.url("/hook")
    settings.CLAMD_URL = ""
    receiver.always(
        "/hook",
        Reply(status=403, body=json.dumps({"message": "Only PDF invoices, please."}).encode()),
    )
    User.objects.create_user("member@example.com", PASSWORD)
    context, watch = browser_context
    page = context.new_page()
    sign_in(page, "member@example.com")
    page.goto("/upload/")
    page.wait_for_selector(".uppy-Dashboard")
    cat = tmp_path / "cat.txt"
    cat.write_text("meow\n")
    page.locator("input.uppy-Dashboard-input").first.set_input_files([str(cat)])
    page.locator(".uppy-StatusBar-actionBtn--upload").click()
    expect(page.get_by_text("Only PDF invoices, please.").first).to_be_visible()
    screenshot(page, "upload-refused-by-hook")
    assert not UploadFile.objects.exists()
    # The browser logs the refused creation (403) itself; nothing else.
    assert all("403" in m for m in watch.console_errors), watch.console_errors
    watch.console_errors.clear()


def test_a_quarantined_file_page(browser_context, clamd, tmp_path):
    from io import BytesIO

    from portal.services.uploads import upload_file_create

    user = User.objects.create_user("member@example.com", PASSWORD)
    file = upload_file_create(owner=user, stream=BytesIO(EICAR), filename="invoice.pdf.exe")
    assert verify_file(file.id).status == "quarantined"
    context, _ = browser_context
    page = context.new_page()
    sign_in(page, "member@example.com")
    page.goto(f"/files/{file.id}/")
    expect(page.locator("#file-error")).to_contain_text(SIGNATURE)
    expect(page.locator("#download")).to_have_count(0)
    assert axe_violations(page) == []
    screenshot(page, "file-quarantined")
    page.goto("/files/")
    expect(page.locator("td .badge-quarantined")).to_have_text("Quarantined")
    assert axe_violations(page) == []
    screenshot(page, "files-quarantined")
