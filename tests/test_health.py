from __future__ import annotations

import socket

import pytest
from django.db import connections


def test_healthz_answers_without_io(client):
    # No django_db mark: pytest-django makes any database access here an error.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db(transaction=True)
def test_readyz_ok(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_readyz_503_names_the_database(client):
    conn = connections["default"]
    conn.close()
    original = conn.settings_dict["PORT"]
    conn.settings_dict["PORT"] = free_port()
    try:
        response = client.get("/readyz")
    finally:
        conn.close()
        conn.settings_dict["PORT"] = original
    assert response.status_code == 503
    body = response.json()
    assert "database" in body["failed"]
    assert body["checks"]["database"].startswith("database unreachable")
