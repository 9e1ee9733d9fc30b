"""The web tier pool's check: no round trip for a healthy idle connection (``connections``)."""

from __future__ import annotations

import time

import psycopg
import pytest

from common.services.connections import check_pooled_connection
from common.services.sql import direct_connection_params

pytestmark = pytest.mark.django_db(transaction=True)


class CountingConnection(psycopg.Connection):
    queries = 0

    def execute(self, *args, **kwargs):
        self.queries += 1
        return super().execute(*args, **kwargs)


@pytest.fixture
def pooled():
    with CountingConnection.connect(**direct_connection_params(), autocommit=True) as conn:
        yield conn


@pytest.fixture
def admin():
    with psycopg.connect(**direct_connection_params(), autocommit=True) as conn:
        yield conn


def test_a_healthy_idle_connection_passes_without_a_query(pooled) -> None:
    check_pooled_connection(pooled)
    check_pooled_connection(pooled)
    assert pooled.queries == 0


def test_a_terminated_backend_fails_the_check(pooled, admin) -> None:
    admin.execute("SELECT pg_terminate_backend(%s)", [pooled.info.backend_pid])
    time.sleep(0.2)  # the goodbye reaches the socket
    with pytest.raises(psycopg.OperationalError):
        check_pooled_connection(pooled)
    assert pooled.queries == 1


def test_a_message_waiting_on_a_live_connection_is_read_past(pooled, admin) -> None:
    pooled.execute("LISTEN doorito_pool_check")
    admin.execute("NOTIFY doorito_pool_check")
    time.sleep(0.2)
    check_pooled_connection(pooled)  # the empty query reads the notification
    assert pooled.queries == 2
    check_pooled_connection(pooled)
    assert pooled.queries == 2


def test_a_closed_connection_fails_the_check(pooled) -> None:
    pooled.close()
    with pytest.raises(psycopg.OperationalError):
        check_pooled_connection(pooled)
