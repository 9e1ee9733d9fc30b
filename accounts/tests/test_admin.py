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
