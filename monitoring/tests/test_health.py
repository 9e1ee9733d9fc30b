from __future__ import annotations

import pytest
from django.db import connections

from conftest import free_port


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
def test_readyz_503_when_the_broker_database_does_not_exist(client):
    # kombu's SQL channel connects lazily: only a query proves the broker is there.
    from celery import Celery

    from boot.celery import app
    from broker import dispose_engines

    missing = app.conf.broker_url.rsplit("/", 1)[0] + "/doorito_no_such_broker_db"
    # The current app for this one request only: shared tasks elsewhere keep the real one.
    probe = Celery("readyz-probe", broker=missing, set_as_current=False)
    probe.set_current()
    try:
        response = client.get("/readyz")
    finally:
        app.set_current()
        probe.pool.force_close_all()
        dispose_engines()
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "broker unreachable: OperationalError"
