"""Sign-in pages in a real Chromium: keyboard only, a phone's width, contrast, no CSP errors."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from accounts.models import User
from frontend.tests.browser import (
    horizontal_overflow,
    low_contrast_text,
    open_context,
    screenshot,
)
from frontend.tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def at_dashboard(url: str) -> bool:
    return urlsplit(url).path == "/"


def test_register_then_sign_in_with_the_keyboard_alone(browser_context):
    context, _ = browser_context
    page = context.new_page()
    page.goto("/")
    assert page.url.endswith("/login/?next=/")
    screenshot(page, "login")
    assert low_contrast_text(page) == []

    page.locator("#main").get_by_role("link", name="Register").click()
    page.get_by_label("Email").fill("keyboard@example.com")
    page.get_by_label("Password", exact=True).fill("short")
    page.get_by_label("Password again").fill("short")
    page.get_by_role("button", name="Create account").click()
    assert page.get_by_text("This password is too short").is_visible()
    screenshot(page, "register")
    assert not User.objects.filter(email="keyboard@example.com").exists()

    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(at_dashboard)
    assert page.get_by_text("Welcome to Doorito").is_visible()
    assert User.objects.filter(email="keyboard@example.com").exists()

    # Sign out from the user menu, then sign in again with keys only.
    page.locator(".user-email").click()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/login/")
    page.focus("#id_username")
    page.keyboard.type("keyboard@example.com")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(at_dashboard)
    assert page.get_by_role("heading", name="Dashboard").is_visible()


def test_pages_fit_a_phone(chromium, live_server, db):
    User.objects.create_user("phone@example.com", PASSWORD)
    context, watch = open_context(chromium, live_server, width=375, height=740)
    try:
        page = context.new_page()
        page.goto("/login/")
        assert horizontal_overflow(page) == 0
        page.get_by_label("Email").fill("phone@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(at_dashboard)
        assert horizontal_overflow(page) == 0
        screenshot(page, "dashboard-phone")
    finally:
        context.close()
    assert not watch.problems(), watch.problems()


def test_api_docs_render_from_local_files(browser_context):
    context, _ = browser_context
    page = context.new_page()
    page.goto("/api/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "Doorito API" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".opblock").count() > 5
    screenshot(page, "api-docs")


def test_the_contrast_check_catches_pale_text(chromium):
    page = chromium.new_page()
    try:
        page.set_content('<body><p id="ok">dark text</p><p style="color:#bbb">pale text</p></body>')
        found = low_contrast_text(page)
    finally:
        page.close()
    assert len(found) == 1 and "pale text" in found[0]
