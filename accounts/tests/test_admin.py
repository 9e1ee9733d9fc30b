from __future__ import annotations

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
    assert client.get("/admin/accounts/apitoken/add/").status_code == 403

    response = client.post(
        "/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [str(token.id)]}
    )
    assert response.status_code == 302
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
    assert token_authenticate(raw=raw) is None
