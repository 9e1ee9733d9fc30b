from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import RequestFactory

from accounts.models import ApiToken, User
from accounts.services.tokens import (
    token_authenticate,
    token_create,
    token_hash,
    token_revoke,
)
from api.auth import authenticate_request
from common.exceptions import ValidationError

pytestmark = pytest.mark.django_db


@pytest.fixture
def user() -> User:
    return User.objects.create_user("owner@example.com", "pw-123456")


def test_create_stores_only_a_hash(user):
    token, raw = token_create(user=user, name="ci")
    assert raw.startswith("dtk_") and len(raw) > 40
    stored = ApiToken.objects.get(pk=token.pk)
    assert stored.token_hash == token_hash(raw)
    assert raw not in {stored.token_hash, stored.prefix, stored.name}
    assert raw.startswith(stored.prefix)


def test_user_can_hold_several_named_tokens(user):
    _, a = token_create(user=user, name="laptop")
    _, b = token_create(user=user, name="ci")
    assert a != b
    assert sorted(user.api_tokens.values_list("name", flat=True)) == ["ci", "laptop"]


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_create_rejects_bad_names_and_changes_nothing(user, name):
    with pytest.raises(ValidationError):
        token_create(user=user, name=name)
    assert not ApiToken.objects.exists()


def test_authenticate_returns_user_and_records_last_use(user):
    token, raw = token_create(user=user, name="ci")
    assert token_authenticate(raw=raw) == user
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    # Within the resolution window no further write happens.
    assert token_authenticate(raw=raw) == user
    token.refresh_from_db()
    assert token.last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(hours=1))
    token_authenticate(raw=raw)
    token.refresh_from_db()
    assert token.last_used_at > first - timedelta(hours=1)


@pytest.mark.parametrize("raw", ["", "dtk_", "dtk_nope", "garbage", "dtk_" + "a" * 300])
def test_authenticate_rejects_unknown(user, raw):
    token_create(user=user, name="ci")
    assert token_authenticate(raw=raw) is None


def test_revoked_token_is_rejected(user):
    token, raw = token_create(user=user, name="ci")
    token_revoke(token=token)
    revoked_at = token.revoked_at
    assert revoked_at is not None
    assert token_authenticate(raw=raw) is None
    token_revoke(token=token)
    token.refresh_from_db()
    assert token.revoked_at == revoked_at


def test_inactive_user_token_is_rejected(user):
    _, raw = token_create(user=user, name="ci")
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert token_authenticate(raw=raw) is None


class TestAuthenticateRequest:
    def test_bearer(self, user):
        _, raw = token_create(user=user, name="ci")
        request = RequestFactory().post("/x", HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert authenticate_request(request) == user

    def test_other_scheme_or_bad_token(self, user):
        _, raw = token_create(user=user, name="ci")
        assert authenticate_request(RequestFactory().get("/x", HTTP_AUTHORIZATION=raw)) is None
        assert (
            authenticate_request(RequestFactory().get("/x", HTTP_AUTHORIZATION="Bearer dtk_x"))
            is None
        )

    def test_bad_token_not_rescued_by_session(self, user):
        request = RequestFactory().get("/x", HTTP_AUTHORIZATION="Bearer dtk_wrong")
        request.user = user
        assert authenticate_request(request) is None

    def test_session_get_needs_no_csrf(self, user):
        request = RequestFactory().get("/x")
        request.user = user
        assert authenticate_request(request) == user

    def test_session_post_without_csrf_is_rejected(self, user):
        request = RequestFactory().post("/x")
        request.user = user
        assert authenticate_request(request) is None

    def test_session_post_with_csrf(self, user, client):
        from django.middleware.csrf import _get_new_csrf_string, _mask_cipher_secret

        secret = _get_new_csrf_string()
        request = RequestFactory().post("/x", HTTP_X_CSRFTOKEN=_mask_cipher_secret(secret))
        request.COOKIES["csrftoken"] = secret
        request.user = user
        assert authenticate_request(request) == user

    def test_anonymous(self):
        from django.contrib.auth.models import AnonymousUser

        request = RequestFactory().get("/x")
        request.user = AnonymousUser()
        assert authenticate_request(request) is None
