"""API token pages: list your own, create (value shown once), revoke."""

from __future__ import annotations

import re

import pytest

from accounts.models import ApiToken
from accounts.services.tokens import token_create

pytestmark = pytest.mark.django_db

TOKEN_RE = re.compile(rb'<code id="token-value">(dtk_[A-Za-z0-9_-]+)</code>')


def _create_via_page(client, name="runner") -> tuple[object, str]:
    page = client.post_form("/tokens/new/", {"name": name}, page="/tokens/")
    assert page.status_code == 201
    match = TOKEN_RE.search(page.content)
    assert match, page.content.decode()
    return page, match.group(1).decode()


def test_anonymous_is_sent_to_sign_in(anon):
    for url in ("/tokens/", "/tokens/new/"):
        page = anon.get(url)
        assert page.status_code == 302
        assert page["Location"].startswith("/login/?next=")


def test_list_shows_only_own_tokens(client_user, user, other_user):
    token_create(user=user, name="mine")
    token_create(user=other_user, name="theirs")
    page = client_user.get("/tokens/")
    assert page.status_code == 200
    assert b"mine" in page.content
    assert b"theirs" not in page.content


def test_create_shows_the_value_once_and_it_authenticates(client_user, user):
    page, raw = _create_via_page(client_user, "nightly import")
    token = ApiToken.objects.get(user=user)
    assert token.name == "nightly import"
    assert raw.startswith(token.prefix)
    # A ready curl line against the absolute API URL.
    assert (
        f"curl -H &quot;Authorization: Bearer {raw}&quot; http://testserver/api/files".encode()
        in (page.content)
    )
    assert page["Cache-Control"].startswith("max-age=0")
    # Not shown again.
    listing = client_user.get("/tokens/")
    assert raw.encode() not in listing.content
    assert token.prefix.encode() in listing.content
    # It works against the API.
    api = client_user.__class__()
    answer = api.get("/api/files", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert answer.status_code == 200


def test_create_with_blank_name_is_refused(client_user, user):
    page = client_user.post_form("/tokens/new/", {"name": "   "}, page="/tokens/")
    assert page.status_code == 200
    assert b"field-error" in page.content
    assert not ApiToken.objects.filter(user=user).exists()


def test_create_without_csrf_token_is_refused(client_user, user):
    page = client_user.post("/tokens/new/", {"name": "x"})
    assert page.status_code == 403
    assert not ApiToken.objects.exists()


def test_revoke_asks_then_revokes_and_the_token_stops_working(client_user, user):
    token, raw = token_create(user=user, name="old")
    confirm = client_user.get(f"/tokens/{token.id}/revoke/")
    assert confirm.status_code == 200
    assert b"Revoke" in confirm.content
    token.refresh_from_db()
    assert token.revoked_at is None  # GET changes nothing
    done = client_user.post_form(f"/tokens/{token.id}/revoke/")
    assert done.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    listing = client_user.get(done["Location"])
    assert b"is revoked" in listing.content
    assert b"badge-revoked" in listing.content
    answer = client_user.__class__().get("/api/files", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert answer.status_code == 401


def test_revoke_without_csrf_token_is_refused(client_user, user):
    token, _ = token_create(user=user, name="keep")
    page = client_user.post(f"/tokens/{token.id}/revoke/")
    assert page.status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None


def test_another_users_token_is_not_found(client_other, user):
    token, _ = token_create(user=user, name="alice's")
    assert client_other.get(f"/tokens/{token.id}/revoke/").status_code == 404
    page = client_other.post_form(f"/tokens/{token.id}/revoke/", page="/tokens/")
    assert page.status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
