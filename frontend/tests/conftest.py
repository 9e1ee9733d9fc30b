"""Portal page fixtures: three users and a signed-in test client for each.

Clients enforce CSRF checks (``enforce_csrf_checks=True``) so every form test
proves the token is required; ``post_form`` fetches the page first and sends
the token back like a browser.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.models import User
from common.models import WebhookEndpoint
from common.services.webhooks import endpoint_create
from conftest import PASSWORD  # noqa: F401 - re-exported for the page tests
from frontend.tests.browser import browser_context, chromium  # noqa: F401 - fixtures
from frontend.tests.webhook_helpers import HOOK


class PortalClient(Client):
    def __init__(self, **kwargs):
        super().__init__(enforce_csrf_checks=True, **kwargs)

    def csrf_token(self, url: str = "/login/") -> str:
        """The token a browser would send: from the page's form, else the cookie."""
        page = self.get(url)
        match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content)
        if match:
            return match.group(1).decode()
        return self.cookies["csrftoken"].value

    def post_form(self, url: str, data: dict | None = None, *, page: str | None = None, **kw):
        """POST ``data`` to ``url`` with the CSRF token taken from ``page`` (default: ``url``)."""
        token = self.csrf_token(page or url)
        return self.post(url, {**(data or {}), "csrfmiddlewaretoken": token}, **kw)


@pytest.fixture
def anon() -> PortalClient:
    return PortalClient()


def _signed_in(user: User) -> PortalClient:
    client = PortalClient()
    client.force_login(user)
    return client


@pytest.fixture
def client_user(user) -> PortalClient:
    return _signed_in(user)


@pytest.fixture
def client_other(other_user) -> PortalClient:
    return _signed_in(other_user)


@pytest.fixture
def client_staff(staff_user) -> PortalClient:
    return _signed_in(staff_user)


@pytest.fixture
def endpoint(staff_user) -> WebhookEndpoint:
    endpoint, _ = endpoint_create(owner=staff_user, url=HOOK, description="runner")
    return endpoint
