"""Sign-in pages in a real Chromium: keyboard only, a phone's width, axe-core's
accessibility rules (contrast included) with and without errors shown, no CSP errors."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from playwright.sync_api import expect

from accounts.models import User
from frontend.tests.browser import (
    axe_violations,
    horizontal_overflow,
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
    assert axe_violations(page) == []

    page.locator("#main").get_by_role("link", name="Register").click()
    page.get_by_label("Email").fill("keyboard@example.com")
    page.get_by_label("Password", exact=True).fill("1234")
    page.get_by_label("Password again").fill("1234")
    page.get_by_role("button", name="Create account").click()
    assert page.get_by_text("This password is too short").is_visible()
    screenshot(page, "register")
    # Several errors under one field, in the one element its aria-describedby names.
    errors = page.locator("#id_password1_error")
    expect(errors).to_contain_text("too common")
    expect(errors).to_contain_text("entirely numeric")
    assert "id_password1_error" in page.get_by_label("Password", exact=True).get_attribute(
        "aria-describedby"
    )
    assert axe_violations(page) == []
    assert not User.objects.filter(email="keyboard@example.com").exists()

    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(at_dashboard)
    assert page.get_by_text("Welcome to Doorito").is_visible()
    assert axe_violations(page) == []
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


def test_sign_in_refused_then_locked_out(chromium, live_server, settings):
    User.objects.create_user("locked@example.com", PASSWORD)
    context, watch = open_context(chromium, live_server)
    try:
        page = context.new_page()
        page.goto("/login/")
        # The last failure allowed locks the account out from this address.
        for attempt in range(1, settings.AXES_FAILURE_LIMIT):
            page.get_by_label("Email").fill("locked@example.com")
            page.get_by_label("Password").fill(f"wrong {attempt}")
            # The same URL again: wait for the new document, not the old one's error.
            with page.expect_navigation():
                page.get_by_role("button", name="Sign in").click()
            expect(page.locator(".form-errors")).to_be_visible()
            if attempt == 1:
                screenshot(page, "login-refused")
                assert axe_violations(page) == []
        page.get_by_label("Email").fill("locked@example.com")
        page.get_by_label("Password").fill("wrong again")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Too many failed sign-ins")).to_be_visible()
        screenshot(page, "locked-out")
        assert axe_violations(page) == []
    finally:
        context.close()
    # The refusals answer with an error status; the console reports only that.
    assert all(("403" in m or "429" in m) for m in watch.console_errors), watch.console_errors
    assert not watch.page_errors and not watch.foreign_requests


def test_password_reset_pages(browser_context):
    user = User.objects.create_user("forgetful@example.com", PASSWORD)
    context, _ = browser_context
    page = context.new_page()
    page.goto("/password/reset/")
    screenshot(page, "password-reset")
    assert axe_violations(page) == []
    page.get_by_label("Email").fill(user.email)
    page.get_by_role("button", name="Send reset link").click()
    expect(page.get_by_role("heading", name="Check your mail")).to_be_visible()
    screenshot(page, "password-reset-sent")
    assert axe_violations(page) == []

    uid = urlsafe_base64_encode(force_bytes(user.pk))
    page.goto(f"/password/reset/{uid}/not-a-token/")
    expect(page.get_by_text("This link is not valid any more")).to_be_visible()
    assert axe_violations(page) == []

    page.goto(f"/password/reset/{uid}/{default_token_generator.make_token(user)}/")
    expect(page.get_by_role("heading", name="Set a new password")).to_be_visible()
    screenshot(page, "password-reset-confirm")
    assert axe_violations(page) == []
    page.get_by_label("New password", exact=True).fill("123")
    page.get_by_label("New password confirmation").fill("321")
    page.get_by_role("button", name="Set password").click()
    expect(page.locator(".field-error").first).to_be_visible()
    screenshot(page, "password-reset-confirm-errors")
    assert axe_violations(page) == []


def test_pages_fit_a_phone(chromium, live_server, db):
    User.objects.create_user("phone@example.com", PASSWORD)
    context, watch = open_context(chromium, live_server, width=375, height=740)
    try:
        page = context.new_page()
        page.goto("/login/")
        assert horizontal_overflow(page) == 0
        assert axe_violations(page) == []
        page.get_by_label("Email").fill("phone@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(at_dashboard)
        assert horizontal_overflow(page) == 0
        screenshot(page, "dashboard-phone")
        assert axe_violations(page) == []
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
    # No axe check here: the page is Swagger UI's (served by django-ninja), not
    # the portal's markup, and axe finds its contrast, nested buttons and
    # missing landmarks and lang.


def test_the_axe_check_fails_on_what_it_must(chromium):
    """The check can fail: pale text, a duplicate id that aria-describedby
    names, a button whose label hides the text it shows."""
    page = chromium.new_page()
    try:
        page.set_content(
            '<html lang="en"><head><title>Check</title></head><body><main><h1>Check</h1>'
            '<p>dark text</p><p style="color:#bbb">pale text</p>'
            '<label for="f">Field</label><input id="f" aria-describedby="f_error">'
            '<small id="f_error">too short</small><small id="f_error">too common</small>'
            '<button type="button" aria-label="Copy token">Copied</button>'
            "</main></body></html>"
        )
        found = axe_violations(page)
    finally:
        page.close()
    assert [line.split()[1] for line in found] == [
        "color-contrast",
        "label-content-name-mismatch",
        "duplicate-id-aria",
    ], found
