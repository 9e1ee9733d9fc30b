"""The upload page's time left (#23.5): no "21h 55m left" in a 7-second upload,
no "0s left" for 25 s after a reload.

Real Chromium on the upload page. The first test feeds the page's estimator
(frontend/js/eta.js) the progress reports of those two stories on a made-up
clock, so what it answers does not depend on this machine's speed. The
second uploads a real file through the page with the browser's upload
throttled, reads the line under the Dashboard as it changes, and takes
screenshots at 1280 and 375 px.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

import pytest

from frontend.tests.browser import open_context, screenshot
from frontend.tests.conftest import PASSWORD
from frontend.tests.test_browser_journey import wait_until
from portal.models import UploadFile

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.processes]

MIB = 1024 * 1024


def _signed_in_page(chromium, live_server, user, *, width: int):
    context, watch = open_context(chromium, live_server, width=width)
    page = context.new_page()
    page.goto("/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")
    page.goto("/upload/")
    page.wait_for_selector(".uppy-Dashboard")
    return context, page, watch


# A 40 MiB upload that takes 7 s: the tus POST and the first PATCH's start
# take 600 ms, then 64 KiB every 11 ms or so. Sampled every 250 ms as the page
# does (once a second there; more often here to catch any bad moment).
SEVEN_SECONDS = """
() => {
  const eta = window.DooritoEta.create();
  const total = 40 * 1024 * 1024, shown = [];
  let sent = 0, t = 0;
  eta.progress("f", 0, 0);                       // the first report: a baseline
  for (t = 600; sent < total; t += 11) {
    sent = Math.min(total, sent + 64 * 1024);
    eta.progress("f", sent, t);
    if (t % 250 < 11) shown.push([t, eta.secondsLeft(total - sent, t)]);
  }
  return {end: t, shown, atTheEnd: eta.secondsLeft(0, t)};
}
"""

# After a reload: the restored file reports 39.9 of 40 MiB (sent before the
# reload) while the page asks the server for 25 s; then the last bytes go.
AFTER_RELOAD = """
() => {
  const eta = window.DooritoEta.create();
  const total = 40 * 1024 * 1024, shown = [];
  let sent = total - 100 * 1024;
  eta.progress("f", sent, 0);
  for (let t = 0; t <= 25000; t += 250) shown.push([t, eta.secondsLeft(total - sent, t)]);
  let t = 25000;
  while (sent < total) {
    t += 100; sent = Math.min(total, sent + 20 * 1024);
    eta.progress("f", sent, t);
    shown.push([t, eta.secondsLeft(total - sent, t)]);
  }
  return shown;
}
"""

# Sending, then a stall (a paused network): no estimate while nothing moves.
STALL = """
() => {
  const eta = window.DooritoEta.create();
  const total = 100 * 1024 * 1024;
  let sent = 0;
  eta.progress("f", 0, 0);
  for (let t = 100; t <= 4000; t += 100) { sent += 100 * 1024; eta.progress("f", sent, t); }
  const before = eta.secondsLeft(total - sent, 4000);
  const stalled = eta.secondsLeft(total - sent, 4000 + window.DooritoEta.STALL_MS + 1);
  return {before, stalled};
}
"""


def test_time_left_is_sensible_from_the_start_and_after_a_reload(chromium, live_server, user):
    context, page, watch = _signed_in_page(chromium, live_server, user, width=1280)
    try:
        run = page.evaluate(SEVEN_SECONDS)
        assert 6500 < run["end"] < 8000
        shown = [(t, s) for t, s in run["shown"] if s is not None]
        # Nothing before two seconds of sending: no guess from the first bytes.
        assert all(t >= 2600 for t, _ in shown)
        assert shown, "an estimate during the upload"
        # Never hours (Uppy said "21h 55m left"): at most the upload's own length.
        assert max(s for _, s in shown) < 8
        assert run["atTheEnd"] is None  # every byte sent: no "0s left"

        after_reload = page.evaluate(AFTER_RELOAD)
        # 25 s asking the server: no estimate at all (Uppy said "0s left").
        assert all(s is None for t, s in after_reload if t <= 25000)
        later = [s for t, s in after_reload if t > 25000 and s is not None]
        assert all(s >= 0.5 for s in later)

        stall = page.evaluate(STALL)
        assert stall["before"] is not None and stall["stalled"] is None

        formats = page.evaluate(
            "() => [0.4, 7, 61, 3599, 3600 * 2 + 300].map(window.DooritoEta.format)"
        )
        assert formats == [
            "about 5 s left",
            "about 10 s left",
            "about 1 min left",
            "about 60 min left",
            "about 2 h 5 min left",
        ]
    finally:
        context.close()
    assert not watch.problems(), "\n".join(watch.problems())


@pytest.mark.parametrize("width", [1280, 375])
def test_a_throttled_upload_shows_bytes_and_a_sensible_time_left(
    chromium, live_server, user, tmp_path, width, monkeypatch
):
    monkeypatch.setattr("frontend.views.uploads.CHUNK_SIZE", 4 * MIB)
    size = 6 * MIB
    path = tmp_path / f"scan-{width}.bin"
    path.write_bytes(os.urandom(size))
    context, page, watch = _signed_in_page(chromium, live_server, user, width=width)
    try:
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        # About 1 MiB/s up: a six-second upload.
        cdp.send(
            "Network.emulateNetworkConditions",
            {
                "offline": False,
                "latency": 0,
                "downloadThroughput": -1,
                "uploadThroughput": MIB,
            },
        )
        page.locator("input.uppy-Dashboard-input").first.set_input_files(str(path))
        page.locator(".uppy-StatusBar-actionBtn--upload").click()
        line = page.locator("[data-upload-eta]")
        texts: list[str] = []
        shot = False

        def done() -> bool:
            page.wait_for_timeout(200)
            if line.is_visible():
                text = line.inner_text()
                texts.append(text)
                nonlocal shot
                if "left" in text and not shot:
                    assert page.locator(".uppy-StatusBar-additionalInfo").count() == 0
                    screenshot(page, f"upload-time-left-{width}")
                    shot = True
            return UploadFile.objects.filter(owner=user, status="stored").exists()

        wait_until(done, timeout=90, what="the stored file")
        # Uppy's own estimate is not shown beside it.
        assert page.locator(".uppy-StatusBar-additionalInfo").count() == 0
        page.wait_for_selector(".uppy-StatusBar.is-complete, .uppy-Dashboard-Item.is-complete")
        page.wait_for_timeout(1200)
        assert line.is_hidden()  # done: no "0s left" left behind
    finally:
        context.close()
    assert not watch.problems(), "\n".join(watch.problems())
    assert texts, "the progress line was never shown"
    shape = re.compile(r"[\d.]+ (B|KiB|MiB) of 6\.0 MiB sent( · about .+ left)?")
    assert all(shape.fullmatch(t) for t in texts), texts
    estimates = [t for t in texts if "left" in t]
    assert estimates, texts
    assert not any(" h" in t or "0 s left" in t for t in estimates), estimates
