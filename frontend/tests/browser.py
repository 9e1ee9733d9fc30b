"""A real Chromium (Debian's package) driven by Playwright for the portal's UI tests.

Playwright's own browser download cannot work on these machines, so the tests
drive the system's ``/usr/bin/chromium`` (``scripts/test.sh`` installs it when
missing and it can). Without a browser the tests skip, except under
``CI=true``, where a missing browser fails the run: CI must never pass by
testing nothing.

Every page a test opens is watched: console errors (CSP violations included),
uncaught page errors and any request to a host other than the live server
fail the test at teardown.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Screenshots of every page go here; `make screenshots` points it at docs/img.
SCREENSHOT_DIR = Path(os.environ.get("DOORITO_SCREENSHOTS_DIR", ROOT / ".data" / "screenshots"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # The machines have no network but the registries: background services
    # would only fill the log with refused connections.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> Iterator:
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (scripts/test.sh installs it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    # Playwright's sync API runs an event loop in this thread; the test's own
    # ORM calls are still synchronous, so Django's guard must stand aside.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watch:
    """What a page did that a test must not accept silently."""

    origin: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def on_console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def on_request(self, request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob"):
            return
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign_requests.append(request.url)

    def problems(self) -> list[str]:
        return (
            [f"console: {m}" for m in self.console_errors]
            + [f"page error: {m}" for m in self.page_errors]
            + [f"request to another host: {u}" for u in self.foreign_requests]
        )


def open_context(chromium, live_server, *, width: int = 1280, height: int = 900, **options):
    """A fresh browser profile (cookies, storage) on the live server, and its watch.

    ``options`` go to Playwright's ``new_context`` (``timezone_id``, say).
    """
    context = chromium.new_context(
        base_url=live_server.url,
        viewport={"width": width, "height": height},
        accept_downloads=True,
        **options,
    )
    context.set_default_timeout(20_000)
    watch = Watch(origin=live_server.url)

    def attach(page) -> None:
        page.on("console", watch.on_console)
        page.on("pageerror", lambda exc: watch.page_errors.append(str(exc)))
        page.on("request", watch.on_request)

    context.on("page", attach)
    return context, watch


@pytest.fixture
def browser_context(chromium, live_server):
    context, watch = open_context(chromium, live_server)
    try:
        yield context, watch
    finally:
        context.close()
    assert not watch.problems(), "\n".join(watch.problems())


def screenshot(page, name: str) -> Path:
    """Full-page PNG under SCREENSHOT_DIR (docs/img/<name>.png when refreshing the docs)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# The rules axe-core runs on every page: WCAG 2.0 and 2.1, levels A and AA
# (contrast included: ``color-contrast``), and Deque's best practices.
AXE = Axe()  # axe-core's script as the package bundles it
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
# Rules outside those tags, turned on by name. ``label-content-name-mismatch``
# (WCAG 2.5.3, still "experimental" in axe): a control's accessible name must
# contain its visible text, so a button that shows "Copied" may not be named
# "Copy token" by an aria-label that hides the change.
AXE_EXTRA_RULES = ["label-content-name-mismatch"]
# Rules whose failures axe leaves "for review" (incomplete) rather than calling
# them violations; here they fail like any other. ``duplicate-id-aria``: two
# elements with the id that an aria-describedby (say) points to.
AXE_REVIEW_IS_FAILURE = {"duplicate-id-aria"}


def axe_violations(page, *, exclude: tuple[str, ...] = ()) -> list[str]:
    """What axe-core finds wrong on the page as it is now, one line per element.

    Run through ``page.evaluate``, which the pages' Content-Security-Policy
    does not govern, so the normal browser context serves. ``exclude`` names
    CSS selectors of parts that are not the portal's own markup.
    """
    options = {
        "runOnly": {"type": "tag", "values": AXE_TAGS},
        "rules": {rule: {"enabled": True} for rule in AXE_EXTRA_RULES},
        "resultTypes": ["violations", "incomplete"],
    }
    context = {"exclude": [[selector] for selector in exclude]} if exclude else None
    results = AXE.run(page, context=context, options=options)
    found = results.response["violations"] + [
        result for result in results.response["incomplete"] if result["id"] in AXE_REVIEW_IS_FAILURE
    ]
    path = urlsplit(page.url).path
    return [
        f"{path}: {result['id']} ({result['impact']}) {' '.join(node['target'])}"
        f" - {' '.join((node.get('failureSummary') or result['help']).split())}"
        for result in found
        for node in result["nodes"]
    ]


def horizontal_overflow(page) -> int:
    """How many pixels the page is wider than its viewport (0 = fits)."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
