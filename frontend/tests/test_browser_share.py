"""A share link in a real browser: the owner makes it, an outsider unlocks and downloads it.

Screenshots at 1280 px and 375 px (docs/img when refreshed with ``make
screenshots``); axe-core's rules on every state; no sideways scrolling on a
phone.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from accounts.models import User
from frontend.tests.browser import axe_violations, horizontal_overflow, open_context, screenshot
from frontend.tests.conftest import PASSWORD
from portal.models import FileDownload, ShareLink
from portal.services.batches import batch_create
from portal.services.share_links import share_link_create
from portal.services.uploads import upload_file_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BODY = b"Invoice 2026-118, total 1 240.00 EUR\n" * 2000


def sign_in(page, email: str) -> None:
    page.goto("/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")


def check_page(page, problems: list[str], name: str) -> None:
    page.wait_for_load_state("networkidle")
    screenshot(page, name)
    problems.extend(f"{name}: {line}" for line in axe_violations(page))
    if horizontal_overflow(page) > 0:
        problems.append(f"{name}: {horizontal_overflow(page)} px wider than the viewport")


def test_owner_makes_a_link_and_an_outsider_downloads_with_its_password(
    chromium, live_server, settings, tmp_path
) -> None:
    settings.SITE_URL = live_server.url
    owner = User.objects.create_user("owner@example.com", PASSWORD)
    file = upload_file_create(owner=owner, stream=io.BytesIO(BODY), filename="invoice-118.txt")
    problems: list[str] = []

    # The owner makes a link on the file's page (1280 px).
    context, watch = open_context(chromium, live_server, width=1280, height=900)
    try:
        page = context.new_page()
        sign_in(page, owner.email)
        page.goto(f"/files/{file.id}/")
        page.get_by_text("New share link…").click()
        page.get_by_label("Download limit").fill("1")
        page.get_by_label("Password (optional)").fill("blue harbour")
        page.get_by_role("button", name="Make link").click()
        check_page(page, problems, "share-link-created")
        url = page.locator("#share-url").inner_text()
        assert url.startswith(f"{live_server.url}/s/")
    finally:
        context.close()
    assert not watch.problems(), watch.problems()
    assert ShareLink.objects.get().max_downloads == 1

    for width, suffix in ((1280, ""), (375, "-phone")):
        if suffix:  # a fresh link for the phone, the first one is used up
            url = (
                live_server.url
                + "/s/"
                + share_link_create(
                    owner=owner, file=file, password="blue harbour", max_downloads=1
                ).token
            )
        context, watch = open_context(chromium, live_server, width=width, height=800)
        try:
            page = context.new_page()
            page.goto(url)
            assert page.get_by_role("heading", name="invoice-118.txt").is_visible()
            assert page.get_by_text(file.sha256).is_visible()
            assert page.get_by_role("button", name="Download").count() == 0
            check_page(page, problems, "share-page-password" + suffix)

            page.get_by_label("This link is protected by a password").fill("wrong")
            page.get_by_role("button", name="Unlock").click()
            assert page.get_by_text("That password is not right.").is_visible()
            check_page(page, problems, "share-page-wrong-password" + suffix)

            page.get_by_label("This link is protected by a password").fill("blue harbour")
            page.get_by_role("button", name="Unlock").click()
            check_page(page, problems, "share-page" + suffix)
            with page.expect_download() as info:
                page.get_by_role("button", name="Download").click()
            download = info.value
            assert download.suggested_filename == "invoice-118.txt"
            saved = tmp_path / f"got{suffix}.txt"
            download.save_as(saved)
            assert saved.read_bytes() == BODY

            response = page.goto(url)
            assert response is not None and response.status == 410
            assert page.get_by_text("used as many times as it allows").is_visible()
            check_page(page, problems, "share-page-used-up" + suffix)
            # The browser logs the 410 it was told to expect; nothing else may be there.
            watch.console_errors = [m for m in watch.console_errors if "410 (Gone)" not in m]
        finally:
            context.close()
        assert not watch.problems(), watch.problems()

    assert ShareLink.objects.filter(downloads=1).count() == 2
    assert FileDownload.objects.filter(file=file, via="share_link").count() == 2
    assert problems == [], "\n".join(problems)


def test_batch_link_downloads_a_zip(chromium, live_server, settings, tmp_path) -> None:
    settings.SITE_URL = live_server.url
    owner = User.objects.create_user("owner@example.com", PASSWORD)
    batch = batch_create(owner=owner, metadata={"name": "Scans from Monday"})
    for i in range(1, 4):
        upload_file_create(
            owner=owner, stream=io.BytesIO(b"scan %d\n" % i), filename=f"scan-{i}.txt", batch=batch
        )
    token = share_link_create(owner=owner, batch=batch).token
    problems: list[str] = []
    for width, suffix in ((1280, ""), (375, "-phone")):
        context, watch = open_context(chromium, live_server, width=width, height=800)
        try:
            page = context.new_page()
            page.goto(f"/s/{token}")
            assert page.get_by_role("heading", name="Scans from Monday").is_visible()
            check_page(page, problems, "share-page-batch" + suffix)
            with page.expect_download() as info:
                page.get_by_role("button", name="Download all as zip").click()
            saved = Path(tmp_path / f"batch{suffix}.zip")
            info.value.save_as(saved)
            with zipfile.ZipFile(saved) as archive:
                assert archive.namelist() == ["scan-1.txt", "scan-2.txt", "scan-3.txt"]
        finally:
            context.close()
        assert not watch.problems(), watch.problems()
    assert problems == [], "\n".join(problems)
