from __future__ import annotations

import re

import pytest

from accounts.models import ApiToken, User
from accounts.services.tokens import token_authenticate, token_create

pytestmark = pytest.mark.django_db


def test_token_admin_lists_and_revokes(client, settings):
    admin = User.objects.create_superuser("admin@example.com", "pw-123456")
    token, raw = token_create(user=admin, name="ci")
    client.force_login(admin)
    page = client.get("/admin/accounts/apitoken/")
    assert page.status_code == 200
    assert token.prefix in page.text and raw not in page.text
    assert token.token_hash not in client.get(f"/admin/accounts/apitoken/{token.id}/change/").text

    response = client.post(
        "/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [str(token.id)]}
    )
    assert response.status_code == 302
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
    assert token_authenticate(raw=raw) is None


def test_token_add_goes_through_the_service_and_shows_the_value_once(client):
    admin = User.objects.create_superuser("admin@example.com", "pw-123456")
    runner = User.objects.create_user("runner@example.com", "pw-123456")
    client.force_login(admin)
    assert client.get("/admin/accounts/apitoken/add/").status_code == 200

    refused = client.post("/admin/accounts/apitoken/add/", {"user": runner.pk, "name": "   "})
    assert refused.status_code == 200
    assert not ApiToken.objects.exists()

    response = client.post(
        "/admin/accounts/apitoken/add/", {"user": runner.pk, "name": "runner-1"}, follow=True
    )
    assert response.status_code == 200
    token = ApiToken.objects.get()
    assert (token.user, token.name) == (runner, "runner-1")
    shown = re.findall(r"dtk_[A-Za-z0-9_-]{20,}", response.text)
    assert len(shown) == 1
    assert token_authenticate(raw=shown[0]) == runner

    again = client.get("/admin/accounts/apitoken/").text
    assert shown[0] not in again
    assert shown[0] not in client.get(f"/admin/accounts/apitoken/{token.pk}/change/").text


def test_user_add_and_edit_store_the_one_spelling_and_refuse_twins(client):
    admin = User.objects.create_superuser("admin@example.com", "pw-123456")
    client.force_login(admin)
    password = {"password1": "a-long-admin-passphrase", "password2": "a-long-admin-passphrase"}

    added = client.post("/admin/accounts/user/add/", {"email": "Bob@Bücher.example", **password})
    assert added.status_code == 302, added.content
    bob = User.objects.get(email="bob@xn--bcher-kva.example")

    twin = client.post(
        "/admin/accounts/user/add/", {"email": "bob@xn--bcher-kva.example", **password}
    )
    assert twin.status_code == 200
    assert "already exists" in twin.text
    invisible = client.post(
        "/admin/accounts/user/add/", {"email": "eve@example.com\u200b", **password}
    )
    assert "invisible character (U+200B" in invisible.text
    assert User.objects.count() == 2

    change = {"email": "\uff42ob@bücher.example.", "name": "", "is_active": "on"}
    edited = client.post(f"/admin/accounts/user/{bob.pk}/change/", change)
    assert edited.status_code == 302, edited.content
    bob.refresh_from_db()
    assert bob.email == "bob@xn--bcher-kva.example"
    taken = client.post(
        f"/admin/accounts/user/{bob.pk}/change/", {**change, "email": "ADMIN@example.com"}
    )
    assert taken.status_code == 200
    assert "already exists" in taken.text


def test_admin_sign_in_finds_the_account_by_another_spelling(client):
    User.objects.create_superuser("root@xn--bcher-kva.example", "pw-123456")
    page = client.post(
        "/admin/login/?next=/admin/", {"username": "Root@Bücher.example", "password": "pw-123456"}
    )
    assert page.status_code == 302
    assert client.get("/admin/").status_code == 200
