"""One answer to a database outage (web/outage.py), whichever front hits it.

The real outage, a PostgreSQL cluster stopped under load, is in
test_database_restart.py; these tests make one query fail and check the
answer each front gives: a page for a browser, the JSON error elsewhere,
503 with ``Retry-After`` always, never a 500.
"""

from __future__ import annotations

import pytest
from django.db import OperationalError
from django.test import Client, RequestFactory

from accounts.services.tokens import token_create

pytestmark = pytest.mark.django_db


def _down(*args, **kwargs):
    raise OperationalError("server closed the connection unexpectedly")


def _assert_outage(response, *, html: bool) -> None:
    assert response.status_code == 503, response.content[:300]
    assert response["Retry-After"] == "2"
    if html:
        assert response["Content-Type"].startswith("text/html")
        assert b"Doorito is busy for a moment" in response.content
    else:
        assert response.json()["error"]["code"] == "database_unavailable"


def test_a_page_answers_503_with_a_page_for_browsers(user, monkeypatch):
    monkeypatch.setattr("frontend.views.dashboard.file_counts_for_owner", _down)
    client = Client()
    client.force_login(user)
    _assert_outage(client.get("/", HTTP_ACCEPT="text/html"), html=True)
    # A script fetching the same page gets the JSON error.
    _assert_outage(client.get("/", HTTP_ACCEPT="application/json"), html=False)


def test_the_json_api_answers_503_with_its_error_envelope(user, monkeypatch):
    monkeypatch.setattr("api.routers.files.files_for_user", _down)
    _, raw = token_create(user=user, name="outage")
    response = Client().get(
        "/api/files", HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_ACCEPT="text/html"
    )
    _assert_outage(response, html=False)


def test_the_tus_endpoint_answers_503_with_its_protocol_headers(user, monkeypatch):
    monkeypatch.setattr("api.tus.views.upload_session_status", _down)
    _, raw = token_create(user=user, name="outage")
    response = Client().head(
        "/api/tus/0190f5c1-0000-7000-8000-000000000000",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
        HTTP_TUS_RESUMABLE="1.0.0",
    )
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert response["Tus-Resumable"] == "1.0.0"
    assert response.content == b""


def test_an_outage_outside_a_view_gets_the_same_answer_from_the_500_handler():
    """A middleware (the session, sign-in throttling) that loses the database
    raises outside the view; Django hands that to ``handler500``."""
    from frontend.views.errors import server_error

    request = RequestFactory().get("/files/", HTTP_ACCEPT="text/html")
    try:
        _down()
    except OperationalError:
        response = server_error(request)
    _assert_outage(response, html=True)
