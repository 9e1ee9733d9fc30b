"""CORS on the JSON API (django-cors-headers): listed origins only, never "null"."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

APP = "https://app.example.com"


def preflight(origin: str, path: str = "/api/files", method: str = "POST"):
    return Client().options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type,x-csrftoken",
        },
    )


@pytest.fixture
def listed(settings):
    settings.CORS_ALLOWED_ORIGINS = [APP]
    settings.CORS_ALLOW_ALL_ORIGINS = False
    settings.CORS_ALLOW_CREDENTIALS = True


def test_preflight_from_an_allowed_origin_is_answered(listed):
    response = preflight(APP)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    assert response["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in response["Access-Control-Allow-Methods"]
    headers = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-csrftoken", "tus-resumable"} <= headers


@pytest.mark.parametrize("origin", ["https://evil.example.net", "null", "http://app.example.com"])
def test_other_origins_get_no_allow_origin(listed, origin):
    response = preflight(origin)
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Origin" not in Client().get(
        "/api/files", headers={"Origin": origin}
    )


def test_an_api_answer_carries_the_headers_for_an_allowed_origin(listed, api):
    response = api.get("/api/files", headers={"Origin": APP})
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    assert "origin" in response["Vary"].lower()


def test_pages_outside_the_api_get_no_cors(listed):
    response = Client().get("/login/", headers={"Origin": APP})
    assert "Access-Control-Allow-Origin" not in response


def test_star_allows_any_origin_without_credentials(settings):
    settings.CORS_ALLOWED_ORIGINS = []
    settings.CORS_ALLOW_ALL_ORIGINS = True
    settings.CORS_ALLOW_CREDENTIALS = False
    response = preflight("https://anywhere.example")
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response
