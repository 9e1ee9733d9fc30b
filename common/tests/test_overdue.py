"""What the workers' overdue watch counts as left behind (``common/services/scheduling.py``)."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from common.models import WebhookDelivery
from common.services.scheduling import overdue_work_exists
from common.services.sql import direct_connection_params
from common.services.webhooks import endpoint_create
from common.tests.events import emit_file_stored

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def watch_conn():
    with psycopg.connect(**direct_connection_params(), autocommit=True) as conn:
        yield conn


def _set(**fields) -> None:
    WebhookDelivery.objects.update(**fields)


def test_only_work_a_running_run_would_already_have_taken_counts(watch_conn, receiver):
    endpoint_create(url=receiver.url("/a"))
    emit_file_stored(0)
    now = timezone.now()
    # Nothing due yet, then due a moment ago (a run polls every 0.25 s).
    _set(status="pending", next_attempt_at=now + dt.timedelta(seconds=30))
    assert overdue_work_exists(watch_conn) is False
    _set(next_attempt_at=now - dt.timedelta(seconds=0.1))
    assert overdue_work_exists(watch_conn) is False
    _set(next_attempt_at=now - dt.timedelta(seconds=2))
    assert overdue_work_exists(watch_conn) is True
    # A live lease is a run's; a lease that ran out is left behind.
    _set(status="sending", lease_expires_at=now + dt.timedelta(seconds=20))
    assert overdue_work_exists(watch_conn) is False
    _set(lease_expires_at=now - dt.timedelta(seconds=1))
    assert overdue_work_exists(watch_conn) is True
    # Terminal rows are nobody's work.
    _set(status="delivered", lease_expires_at=None, next_attempt_at=None)
    assert overdue_work_exists(watch_conn) is False


def test_the_watch_connection_is_its_own_and_named():
    from common.services.scheduling import OverdueWatch

    watch = OverdueWatch()
    try:
        conn = watch._connection()
        name = conn.execute("SHOW application_name").fetchone()[0]
        assert name.endswith(" overdue-watch")
        assert conn.info.backend_pid != connection.cursor().connection.info.backend_pid
    finally:
        watch._close()
