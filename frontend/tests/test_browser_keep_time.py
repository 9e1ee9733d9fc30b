"""In Chromium: the upload page's keep time reaches the server, and the quota is shown.

A user with a quota picks "3 days" above the Dashboard and uploads two files
with Uppy over tus: both are stored with ``expires_at`` three days after
they were stored. A third upload past the quota shows the server's own
message on the file. The dashboard then shows the quota used.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from frontend.tests.browser import axe_violations, open_context, screenshot
from frontend.tests.conftest import PASSWORD
from portal.models import UploadFile, UserQuota

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.processes]

# Chromium and Uppy report the refused creation (413) on the console; it is the point here.
EXPECTED_CONSOLE = re.compile(r"status of 413|response code: 413.*quota_exceeded")


def test_keep_time_and_quota_in_the_browser(chromium, live_server, user, settings, tmp_path):
    settings.FILE_UPLOAD_TTL_HOURS = 24
    settings.FILE_UPLOAD_MAX_TTL_HOURS = 720
    UserQuota.objects.create(owner=user, max_bytes=10_000, max_files=2)
    paths = []
    for name, size in (("invoice.txt", 3000), ("receipt.txt", 2000), ("too-many.txt", 10)):
        path = tmp_path / name
        path.write_bytes(b"a" * size)
        paths.append(path)

    context, watch = open_context(chromium, live_server)
    try:
        page = context.new_page()
        page.goto("/login/")
        page.get_by_label("Email").fill(user.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: urlsplit(url).path == "/")

        page.goto("/upload/")
        page.get_by_label("Keep the files for").select_option(label="3 days")
        page.locator("input.uppy-Dashboard-input").first.set_input_files(
            [str(p) for p in paths[:2]]
        )
        page.locator(".uppy-StatusBar-actionBtn--upload").click()
        page.wait_for_selector(".uppy-StatusBar.is-complete")
        assert page.locator("[data-upload-results] a").count() == 2
        assert axe_violations(page, exclude=("#uppy-dashboard",)) == []
        screenshot(page, "upload-keep-time")

        files = list(UploadFile.objects.filter(owner=user))
        assert len(files) == 2
        assert {f.status for f in files} == {"stored"}
        assert {f.expires_at - f.stored_at for f in files} == {timedelta(hours=72)}

        # The files quota is full: the server refuses the next one at creation.
        page.goto("/upload/")
        page.locator("input.uppy-Dashboard-input").first.set_input_files(str(paths[2]))
        page.locator(".uppy-StatusBar-actionBtn--upload").click()
        page.wait_for_selector(".uppy-StatusBar.is-error")
        assert "your quota is 2 files" in page.content()
        screenshot(page, "upload-quota-refused")
        assert UploadFile.objects.filter(owner=user).count() == 2

        page.goto("/")
        quota = page.locator("#quota")
        assert "4.9\xa0KiB of 9.8\xa0KiB" in quota.inner_text()
        assert "2 of 2" in quota.inner_text()
        assert axe_violations(page) == []
        screenshot(page, "dashboard-quota")
    finally:
        context.close()
    unexpected = [p for p in watch.problems() if not EXPECTED_CONSOLE.search(p)]
    assert not unexpected, "\n".join(unexpected)
