from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User
from accounts.services.tokens import token_create
from api.tests.tus_helpers import Tus, raw_token


class ApiClient(Client):
    """A Django test client that sends a bearer token on every request."""

    def __init__(self, raw_token: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.raw_token = raw_token
        if raw_token:
            self.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw_token}"


def _client_for(user: User) -> ApiClient:
    _, raw = token_create(user=user, name="tests")
    return ApiClient(raw)


@pytest.fixture
def api(user) -> ApiClient:
    return _client_for(user)


@pytest.fixture
def other_api(other_user) -> ApiClient:
    return _client_for(other_user)


@pytest.fixture
def staff_api(staff_user) -> ApiClient:
    return _client_for(staff_user)


@pytest.fixture
def anon() -> ApiClient:
    return ApiClient()


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    if code:
        assert body["error"]["code"] == code
    return body["error"]


# The tus endpoint's tests (test_tus_*.py) ------------------------------------------


@pytest.fixture
def owner(transactional_db) -> User:
    return User.objects.create_user("tus-owner@example.com", "pw-owner-1234")


@pytest.fixture
def intruder(transactional_db) -> User:
    return User.objects.create_user("tus-other@example.com", "pw-other-1234")


@pytest.fixture
def tus(live_server, owner) -> Tus:
    client = Tus(live_server.url, raw_token(owner))
    client.user = owner
    return client
