"""Absolute links name the portal as it is reached: SITE_URL, else the
request's host, else (no request: webhook payloads) 127.0.0.1:WEB_PORT."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from accounts.services.tokens import token_create
from common.models import OutboxEvent
from portal.services.uploads import upload_file_create
from portal.storage import site_url
from portal.tests.streams import BytesStream
from tests.settings_probe import load


@pytest.fixture
def user(db) -> User:
    return User.objects.create_user("links@example.com", "pw-123456")


@pytest.fixture
def unset_site_url(settings):
    settings.SITE_URL = ""
    settings.WEB_PORT = 8100
    settings.ALLOWED_HOSTS = ["127.0.0.1", "portal.example.org"]
    return settings


def stored_file(user: User):
    return upload_file_create(owner=user, stream=BytesStream(b"abc"), filename="a.txt")


def test_webhook_payload_names_web_port_without_site_url(user, unset_site_url):
    file = stored_file(user)
    event = OutboxEvent.objects.get(event_type="file.stored", aggregate_id=str(file.id))
    url = event.payload["file"]["download_url"]
    assert url.startswith("http://127.0.0.1:8100/portal/download/")


def test_webhook_payload_names_site_url_when_set(user, settings):
    settings.SITE_URL = "https://files.example.com/"
    settings.WEB_PORT = 8100
    file = stored_file(user)
    event = OutboxEvent.objects.get(event_type="file.stored", aggregate_id=str(file.id))
    assert event.payload["file"]["download_url"].startswith(
        "https://files.example.com/portal/download/"
    )


@pytest.mark.parametrize("host", ["127.0.0.1:8100", "portal.example.org:9443"])
def test_api_download_redirect_names_the_requests_host(user, unset_site_url, host):
    file = stored_file(user)
    _, raw = token_create(user=user, name="links")
    response = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get(
        f"/api/files/{file.id}/download", HTTP_HOST=host
    )
    assert response.status_code == 302
    assert response["Location"].startswith(f"http://{host}/portal/download/")


def test_portal_download_redirect_names_the_requests_host(user, unset_site_url, client):
    file = stored_file(user)
    client.force_login(user)
    url = reverse("frontend:file_download", kwargs={"file_id": file.id})
    response = client.get(url, HTTP_HOST="portal.example.org:9443")
    assert response.status_code == 302
    assert response["Location"].startswith("http://portal.example.org:9443/portal/download/")


def test_site_url_wins_over_the_requests_host(user, settings):
    settings.SITE_URL = "https://files.example.com"
    settings.ALLOWED_HOSTS = ["portal.example.org"]
    file = stored_file(user)
    _, raw = token_create(user=user, name="links")
    response = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get(
        f"/api/files/{file.id}/download", HTTP_HOST="portal.example.org"
    )
    assert response["Location"].startswith("https://files.example.com/portal/download/")


def test_web_port_is_read_from_the_environment():
    """`WEB_PORT=8100 make run`: the worker's payload links name port 8100."""
    assert load("Dev", WEB_PORT="8100")["site_url_without_request"] == "http://127.0.0.1:8100"
    assert load("Dev")["site_url_without_request"] == "http://127.0.0.1:8000"
    assert (
        load("Dev", WEB_PORT="8100", SITE_URL="https://files.example.com")[
            "site_url_without_request"
        ]
        == "https://files.example.com"
    )


def test_site_url_helper_without_request(settings):
    settings.SITE_URL = ""
    settings.WEB_PORT = 8123
    assert site_url() == "http://127.0.0.1:8123"
