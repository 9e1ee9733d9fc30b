"""The last step of a browser upload is safe: reload, close or pause around the last PATCH.

Real Chromium on the upload page against the live server. The file goes up
in 4 MiB chunks (the page's chunk size made small so there are several
PATCHes), and the test interrupts the page at each moment around the
request that completes the upload:

- the last PATCH held in the browser, never sent (Playwright route);
- the last PATCH's bytes at the server, recording them blocked (a row lock
  the test holds on the upload session);
- the file being made: the bytes recorded, the file record blocked (a table
  lock on ``portal_uploadfile``), so the server holds the upload's lock;
- the last PATCH answered, the page reloaded at once (GoldenRetriever saves
  its state at most every 500 ms, so it comes back unfinished, its bytes
  already dropped).

Each time: exactly one stored file with the file's sha256, one tus upload,
and the page shows the file done (its Dashboard item complete and its link
under "Uploaded"), never an error.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection, transaction
from playwright.sync_api import expect

from frontend.tests.browser import open_context, screenshot
from frontend.tests.conftest import PASSWORD
from frontend.tests.test_browser_journey import wait_until
from portal.models import UploadFile, UploadSession

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.processes]

MIB = 1024 * 1024
CHUNK = 4 * MIB
SIZE = 10 * MIB + 12_345  # three PATCHes; the third completes the upload
LAST_OFFSET = (SIZE // CHUNK) * CHUNK
# Chromium reports these answers on the console; they are part of the story
# here (a resumed PATCH finds the upload busy, or its offset moved on).
EXPECTED_CONSOLE = re.compile(
    r"Failed to load resource: the server responded with a status of 4(23|09)"
)


@pytest.fixture
def source(tmp_path) -> tuple[Path, str]:
    path = tmp_path / "survey.bin"
    data = os.urandom(SIZE)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


@pytest.fixture
def signed_in(chromium, live_server, user, monkeypatch):
    """A signed-in browser profile on the upload page's server, small chunks, and its watch."""
    monkeypatch.setattr("frontend.views.uploads.CHUNK_SIZE", CHUNK)
    context, watch = open_context(chromium, live_server)
    page = context.new_page()
    page.goto("/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")
    try:
        yield context, page, watch
    finally:
        context.close()
    unexpected = [p for p in watch.problems() if not EXPECTED_CONSOLE.search(p)]
    assert not unexpected, "\n".join(unexpected)


class LastPatch:
    """Holds the PATCH that completes the upload in the browser until ``send()``."""

    def __init__(self, page):
        self.page = page
        self.holding = True
        self.route = None
        page.route(re.compile(r"/api/tus/"), self._on_request)

    def _on_request(self, route) -> None:
        request = route.request
        offset = int(request.headers.get("upload-offset", "-1"))
        if self.holding and request.method == "PATCH" and offset >= LAST_OFFSET:
            self.route = route
            return
        route.continue_()

    def wait(self) -> None:
        """Until the page has sent every other PATCH and holds the last one."""
        wait_until(
            lambda: self.page.wait_for_timeout(50) or self.route is not None,
            what="the last PATCH",
        )
        # GoldenRetriever saves its state at most every 500 ms: let it save
        # the upload's URL and progress, as it would have by now on a real
        # upload, whose last PATCH takes longer than that.
        self.page.wait_for_timeout(700)

    def send(self) -> None:
        self.holding = False
        self.route.continue_()

    def let_through(self) -> None:
        """Stop holding (a held request dies with the page that sent it)."""
        self.holding = False


def start_upload(page, path: Path) -> LastPatch:
    page.goto("/upload/")
    page.wait_for_selector(".uppy-Dashboard")
    last = LastPatch(page)
    page.locator("input.uppy-Dashboard-input").first.set_input_files(str(path))
    page.locator(".uppy-StatusBar-actionBtn--upload").click()
    last.wait()
    return last


def lock_waiters() -> int:
    """Requests of the live server waiting for a lock this test holds."""
    with connection.cursor() as cursor:
        # Asked inside the transaction that holds the lock, where PostgreSQL
        # would otherwise answer from the snapshot it took the first time.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


@contextmanager
def server_blocked(lock_sql: str, params: list) -> Iterator[None]:
    """Hold a lock that stops the server at one step until the block ends."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(lock_sql, params)
        yield


def recording_blocked(user) -> AbstractContextManager[None]:
    """The session's row: the last PATCH's bytes are stored but cannot be recorded."""
    session = UploadSession.objects.get(owner=user)
    return server_blocked(
        "SELECT 1 FROM portal_uploadsession WHERE id = %s FOR UPDATE", [session.id]
    )


def file_record_blocked() -> AbstractContextManager[None]:
    """Every byte recorded and the file assembled; its record cannot be written."""
    return server_blocked("LOCK TABLE portal_uploadfile IN SHARE ROW EXCLUSIVE MODE", [])


def send_and_wait_until_blocked(page, last: LastPatch) -> None:
    last.send()
    wait_until(
        lambda: page.wait_for_timeout(50) or lock_waiters() >= 1,
        what="the server blocked on the last PATCH",
    )


def assert_one_stored_file(user, sha256: str) -> None:
    wait_until(
        lambda: UploadFile.objects.filter(owner=user, status="stored").exists(),
        what="the stored file",
    )
    files = list(UploadFile.objects.filter(owner=user))
    assert [(f.status, f.sha256, f.size) for f in files] == [("stored", sha256, SIZE)]
    assert UploadSession.objects.filter(owner=user).count() == 1


def assert_page_shows_it_done(page, name: str, *, item_may_be_gone: bool = False) -> None:
    """Its link under "Uploaded" goes to the file, and the Dashboard shows no error.

    With ``item_may_be_gone``, the Dashboard may have no item at all: an upload
    that finished before the reload is forgotten by GoldenRetriever, as after
    any finished upload, and only its link says it is done.
    """
    if not item_may_be_gone:
        page.wait_for_selector(".uppy-StatusBar.is-complete, .uppy-Dashboard-Item.is-complete")
    link = page.locator("[data-upload-results] a", has_text=name)
    file = wait_until(
        lambda: UploadFile.objects.filter(filename=name, status="stored").first(),
        what="the stored file",
    )
    # Once the server has said so, the link goes straight to the file's page.
    expect(link).to_have_attribute("href", f"/files/{file.id}/")
    # A restored item may still be settling with the server when the link
    # (checked on its own) is right: these wait for it.
    expect(page.locator(".uppy-Dashboard-Item:not(.is-complete)")).to_have_count(0)
    assert page.locator(".uppy-Dashboard-Item.is-error").count() == 0
    assert page.locator(".uppy-Dashboard-Item.is-ghost").count() == 0
    assert page.locator(".uppy-Informer").filter(has_text="failed").count() == 0


def test_reload_while_the_last_patch_has_not_left_the_browser(signed_in, user, source):
    _, page, _ = signed_in
    path, sha256 = source
    last = start_upload(page, path)
    assert UploadSession.objects.get(owner=user).offset == LAST_OFFSET

    last.let_through()
    page.reload()

    assert_page_shows_it_done(page, path.name)
    assert_one_stored_file(user, sha256)
    screenshot(page, "upload-resumed-after-reload")


def test_reload_while_the_server_records_the_last_patch(signed_in, user, source):
    _, page, _ = signed_in
    path, sha256 = source
    last = start_upload(page, path)

    with recording_blocked(user):
        send_and_wait_until_blocked(page, last)
        page.reload()
        page.wait_for_selector(".uppy-Dashboard")
        # The restored file finds the upload busy (423) and retries meanwhile.
        page.wait_for_timeout(1500)
        assert not UploadFile.objects.exists()

    assert_page_shows_it_done(page, path.name)
    assert_one_stored_file(user, sha256)


def test_reload_while_the_server_makes_the_file(signed_in, user, source):
    _, page, _ = signed_in
    path, sha256 = source
    last = start_upload(page, path)

    with file_record_blocked():
        send_and_wait_until_blocked(page, last)
        session = UploadSession.objects.get(owner=user)
        assert (session.offset, session.status) == (SIZE, "active")
        page.reload()
        page.wait_for_selector(".uppy-Dashboard")
        # The restored file is being finished by the request the page left:
        # the page waits for it instead of resuming or failing.
        page.wait_for_timeout(1500)
        assert page.locator(".uppy-Dashboard-Item.is-error").count() == 0
        # ...and says nothing is done before the server has the file.
        assert page.locator(".uppy-Dashboard-Item.is-complete").count() == 0
        assert page.locator("[data-upload-results] a").count() == 0
        screenshot(page, "upload-finishing-after-reload")

    assert_page_shows_it_done(page, path.name)
    assert_one_stored_file(user, sha256)
    screenshot(page, "upload-done-after-reload")


def test_reload_right_after_the_last_patch_was_answered(signed_in, user, source):
    """Depending on how far the page got before the reload (its state saved
    with the upload unfinished, finished, or already forgotten; its result
    listed or not; checked with the server or not), the file comes back as a
    restored item settled with the server, or only as its link, which the
    page checks again after the reload. Either way: done, linked to the file."""
    _, page, _ = signed_in
    path, sha256 = source
    last = start_upload(page, path)

    with page.expect_response(lambda r: r.request.method == "PATCH" and r.status == 204):
        last.send()
    page.reload()

    assert_page_shows_it_done(page, path.name, item_may_be_gone=True)
    assert_one_stored_file(user, sha256)


def test_reload_while_the_page_asks_what_became_of_its_finished_upload(signed_in, user, source):
    """The upload is listed under "Uploaded" at its last answer, then checked
    with the server (status URL). A reload before that check answered used to
    leave the link pointing at the upload, never at the file."""
    _, page, _ = signed_in
    path, sha256 = source
    last = start_upload(page, path)
    asked = []
    page.route(re.compile(r"/upload/status/"), lambda route: asked.append(route))

    last.send()
    wait_until(lambda: page.wait_for_timeout(50) or asked, what="the page asking the server")
    assert page.locator("[data-upload-results] a", has_text=path.name).count() == 1
    page.unroute(re.compile(r"/upload/status/"))
    page.reload()

    assert_page_shows_it_done(page, path.name, item_may_be_gone=True)
    assert_one_stored_file(user, sha256)


def test_close_the_tab_while_the_server_makes_the_file(signed_in, user, source):
    context, page, _ = signed_in
    path, sha256 = source
    last = start_upload(page, path)

    with file_record_blocked():
        send_and_wait_until_blocked(page, last)
        page.close()
    assert_one_stored_file(user, sha256)

    page = context.new_page()
    page.goto("/upload/")
    assert_page_shows_it_done(page, path.name)
    assert UploadFile.objects.filter(owner=user).count() == 1


def test_pause_while_the_server_makes_the_file(signed_in, user, source):
    _, page, _ = signed_in
    path, sha256 = source
    last = start_upload(page, path)

    with file_record_blocked():
        send_and_wait_until_blocked(page, last)
        page.get_by_role("button", name="Pause upload").first.click()
        page.wait_for_timeout(500)
    assert_one_stored_file(user, sha256)

    page.get_by_role("button", name="Resume upload").first.click()
    assert_page_shows_it_done(page, path.name)
    assert UploadFile.objects.filter(owner=user).count() == 1


def test_a_file_refused_while_the_page_was_away_shows_the_refusal_not_done(
    signed_in, user, tmp_path, settings
):
    """Refused at its last step (text dressed as a PNG): after the reload the
    page shows the server's reason, never "done", and Retry is refused afresh."""
    _, page, watch = signed_in
    settings.FILE_UPLOAD_ALLOWED_TYPES = ["image/png"]
    path = tmp_path / "chart.png"
    path.write_bytes(b"not a picture at all\n" * (SIZE // 21 + 1))
    last = start_upload(page, path)

    with file_record_blocked():
        send_and_wait_until_blocked(page, last)
        page.reload()
        page.wait_for_selector(".uppy-Dashboard")
        page.wait_for_timeout(1000)

    error = page.locator(".uppy-Dashboard-Item.is-error")
    error.wait_for()
    assert page.locator(".uppy-Dashboard-Item.is-complete").count() == 0
    assert page.locator("[data-upload-results] a").count() == 0
    screenshot(page, "upload-refused-after-reload")
    assert "not accepted" in page.locator(".uppy-Dashboard").inner_text()
    assert list(UploadFile.objects.values_list("status", flat=True)) == ["failed"]

    # Retry: a new upload, which the server refuses again (it is not "complete").
    page.locator(".uppy-StatusBar-actionBtn--retry").click()
    wait_until(
        lambda: page.wait_for_timeout(100) or UploadFile.objects.count() == 2,
        what="the retried upload's refusal",
    )
    error.wait_for()
    assert page.locator("[data-upload-results] a").count() == 0
    assert not UploadFile.objects.filter(status="stored").exists()
    assert UploadSession.objects.filter(owner=user).count() == 2
    # The retried upload's refusal is on the console (Chromium's and Uppy's
    # own lines), as it should be.
    watch.console_errors[:] = [m for m in watch.console_errors if "415" not in m]
