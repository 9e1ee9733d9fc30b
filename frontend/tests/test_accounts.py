"""Sign in, sign out, registration, passwords, throttling, error pages."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from accounts.models import User
from frontend.tests.conftest import PASSWORD, PortalClient
from frontend.tests.helpers import make_file

pytestmark = pytest.mark.django_db


def test_login_url_is_the_sign_in_page(anon, settings):
    page = anon.get(settings.LOGIN_URL)
    assert page.status_code == 200
    assert b"Sign in" in page.content
    assert b'<label for="id_username">Email</label>' in page.content


def test_anonymous_dashboard_redirects_to_sign_in(anon):
    page = anon.get("/")
    assert page.status_code == 302
    assert page["Location"] == "/login/?next=/"


def test_sign_in_and_out(anon, user):
    page = anon.post_form(
        "/login/", {"username": "alice@example.com", "password": PASSWORD, "next": "/files/"}
    )
    assert page.status_code == 302
    assert page["Location"] == "/files/"
    dashboard = anon.get("/")
    assert dashboard.status_code == 200
    assert b"alice@example.com" in dashboard.content
    out = anon.post_form("/logout/", page="/")
    assert out.status_code == 302
    assert anon.get("/").status_code == 302


def test_sign_in_with_a_wrong_password_is_shown_on_the_form(anon, user):
    page = anon.post_form("/login/", {"username": "alice@example.com", "password": "nope"})
    assert page.status_code == 200
    assert b"Please enter a correct email and password" in page.content


def test_login_form_without_csrf_token_is_refused(anon, user):
    page = anon.post("/login/", {"username": "alice@example.com", "password": PASSWORD})
    assert page.status_code == 403
    assert anon.get("/").status_code == 302


def test_repeated_failures_lock_out_that_account_from_that_address(anon, user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        anon.post_form("/login/", {"username": "alice@example.com", "password": "wrong"})
    locked = anon.post_form("/login/", {"username": "alice@example.com", "password": PASSWORD})
    assert locked.status_code == 429
    assert b"Too many failed sign-ins" in locked.content
    assert anon.get("/").status_code == 302
    # The same account from another address is not locked out.
    elsewhere = PortalClient(REMOTE_ADDR="10.1.2.3")
    ok = elsewhere.post_form("/login/", {"username": "alice@example.com", "password": PASSWORD})
    assert ok.status_code == 302


def test_register_creates_an_account_and_signs_in(anon):
    page = anon.post_form(
        "/register/",
        {"email": "New@Example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert page.status_code == 302
    assert User.objects.filter(email="new@example.com").exists()
    assert anon.get("/").status_code == 200


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "x@example.com", "password1": "short", "password2": "short"}, b"too short"),
        ({"email": "x@example.com", "password1": PASSWORD, "password2": "other"}, b"differ"),
        ({"email": "not-an-email", "password1": PASSWORD, "password2": PASSWORD}, b"valid email"),
        ({"email": "x@example.com", "password1": "password", "password2": "password"}, b"common"),
    ],
)
def test_register_shows_invalid_input_and_creates_nothing(anon, data, message):
    page = anon.post_form("/register/", data)
    assert page.status_code == 200
    assert message in page.content
    assert not User.objects.filter(email="x@example.com").exists()


def test_register_refuses_a_taken_email(anon, user):
    page = anon.post_form(
        "/register/",
        {"email": "ALICE@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert page.status_code == 200
    assert b"already exists" in page.content
    assert User.objects.count() == 1


def test_register_is_closed_when_registration_is_off(anon, settings):
    settings.REGISTRATION_OPEN = False
    assert anon.get("/register/").status_code == 404
    assert b"Register" not in anon.get("/login/").content


def test_register_without_csrf_token_is_refused(anon):
    page = anon.post(
        "/register/", {"email": "x@example.com", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert page.status_code == 403
    assert not User.objects.filter(email="x@example.com").exists()


def test_password_change(client_user, user):
    page = client_user.post_form(
        "/password/change/",
        {
            "old_password": PASSWORD,
            "new_password1": "another-long-passphrase",
            "new_password2": "another-long-passphrase",
        },
    )
    assert page.status_code == 302
    user.refresh_from_db()
    assert user.check_password("another-long-passphrase")


def test_password_change_with_wrong_old_password_changes_nothing(client_user, user):
    page = client_user.post_form(
        "/password/change/",
        {"old_password": "bad", "new_password1": "x-long-pass-1", "new_password2": "x-long-pass-1"},
    )
    assert page.status_code == 200
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_password_reset_by_mail(anon, user):
    page = anon.post_form("/password/reset/", {"email": "alice@example.com"})
    assert page.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/password/reset/\S+/)", mail.outbox[0].body).group(1)
    form_page = anon.get(link, follow=True)
    assert b"Set a new password" in form_page.content
    set_url = form_page.redirect_chain[-1][0]
    done = anon.post_form(
        set_url,
        {"new_password1": "reset-long-passphrase", "new_password2": "reset-long-passphrase"},
    )
    assert done.status_code == 302
    user.refresh_from_db()
    assert user.check_password("reset-long-passphrase")


def test_non_staff_gets_403_in_the_portal_layout(client_user):
    page = client_user.get("/webhooks/")
    assert page.status_code == 403
    assert b"Not allowed" in page.content
    assert b"alice@example.com" in page.content


def test_unknown_page_is_404_in_the_portal_layout(client_user):
    page = client_user.get("/no/such/page/")
    assert page.status_code == 404
    assert b"Not found" in page.content
    assert b"Doorito" in page.content


def test_a_forms_address_opened_on_its_own_is_a_page_not_a_blank_405(client_user, user):
    # The "copy the link now" page is the answer to a POST; opening its
    # address again (a new tab, a restored session) showed an empty page.
    file = make_file(user, "scan.pdf")
    page = client_user.get(f"/files/{file.id}/share/")
    assert page.status_code == 405
    assert page["Allow"] == "POST"
    assert b"Nothing to show here" in page.content
    assert b"Back to the dashboard" in page.content


def test_pages_carry_a_strict_content_security_policy(anon):
    page = anon.get("/login/")
    policy = page["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy


# --- One account per mailbox (accounts/emails.py) ------------------------------

ZWSP = "\u200b"


def _register(client: PortalClient, email: str):
    return client.post_form(
        "/register/", {"email": email, "password1": PASSWORD, "password2": PASSWORD}
    )


@pytest.mark.parametrize(
    "twin",
    [
        "user@xn--bcher-kva.example",
        "USER@Bücher.example",
        "\uff55ser@bücher.example",  # a fullwidth "u"
        "user@bücher.example.",
    ],
)
def test_register_refuses_every_other_spelling_of_a_taken_mailbox(twin):
    assert _register(PortalClient(), "user@bücher.example").status_code == 302
    page = _register(PortalClient(), twin)
    assert page.status_code == 200
    assert b"already exists" in page.content
    assert list(User.objects.values_list("email", flat=True)) == ["user@xn--bcher-kva.example"]


def test_register_refuses_a_zero_width_space_by_name(anon):
    page = _register(anon, f"new@example.com{ZWSP}")
    assert page.status_code == 200
    assert b"invisible character (U+200B ZERO WIDTH SPACE)" in page.content
    assert not User.objects.exists()


def test_sign_in_with_another_spelling_of_the_mailbox(anon):
    User.objects.create_user("user@xn--bcher-kva.example", PASSWORD)
    page = anon.post_form("/login/", {"username": "User@Bücher.example", "password": PASSWORD})
    assert page.status_code == 302
    assert b"user@xn--bcher-kva.example" in anon.get("/").content


def test_sign_in_names_an_invisible_character(anon, user):
    page = anon.post_form("/login/", {"username": f"{user.email}{ZWSP}", "password": PASSWORD})
    assert page.status_code == 200
    assert b"invisible character (U+200B" in page.content
    assert anon.get("/").status_code == 302


def test_password_reset_finds_the_account_by_another_spelling(anon):
    User.objects.create_user("user@xn--bcher-kva.example", PASSWORD)
    page = anon.post_form("/password/reset/", {"email": "user@bücher.example"})
    assert page.status_code == 302
    assert [m.to for m in mail.outbox] == [["user@xn--bcher-kva.example"]]


# --- Submitted credentials decide who is signed in ------------------------------


def _session_user_id(client: PortalClient) -> str | None:
    return client.session.get("_auth_user_id")


def test_credentials_posted_under_someone_elses_session_sign_the_submitter_in(user, other_user):
    browser = PortalClient()
    browser.force_login(user)  # a session planted in this browser
    planted = browser.cookies["sessionid"].value
    # Opening the page while signed in still goes to the dashboard.
    assert browser.get("/login/")["Location"] == "/"

    page = browser.post_form(
        "/login/", {"username": other_user.email, "password": PASSWORD}, page="/password/reset/"
    )
    assert page.status_code == 302
    assert _session_user_id(browser) == str(other_user.pk)
    assert browser.cookies["sessionid"].value != planted
    assert b"bob@example.com" in browser.get("/").content


def test_wrong_credentials_posted_under_someone_elses_session_leave_nobody_signed_in(
    user, other_user
):
    browser = PortalClient()
    browser.force_login(user)
    page = browser.post_form(
        "/login/", {"username": other_user.email, "password": "wrong"}, page="/password/reset/"
    )
    assert page.status_code == 200
    assert b"Please enter a correct email and password" in page.content
    assert _session_user_id(browser) is None
    assert browser.get("/").status_code == 302
