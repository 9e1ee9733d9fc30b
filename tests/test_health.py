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


@pytest.mark.django_db(transaction=True)
def test_readyz_503_when_the_broker_database_does_not_exist(client, monkeypatch):
    # kombu's SQL channel connects lazily: only a query proves the broker is there.
    from celery import Celery

    from boot.broker import dispose_engines
    from boot.celery import app

    missing = app.conf.broker_url.rsplit("/", 1)[0] + "/doorito_no_such_broker_db"
    # Not the current app: shared tasks elsewhere must keep the real one.
    probe = Celery("readyz-probe", broker=missing, set_as_current=False)
    monkeypatch.setattr("boot.celery.app", probe)
    try:
        response = client.get("/readyz")
    finally:
        probe.pool.force_close_all()
        dispose_engines()
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "broker unreachable: OperationalError"
