"""Giving a thread's database connection back while it waits on a client.

With the web tier's connection pool (``DATABASE_POOL_SIZE``), a request
holds a connection from its first query to its end. An upload spends most of
its time reading a body that arrives as fast as the client's link allows: a
hundred phones sending at 2 KB/s would hold a hundred connections doing
nothing. Code about to read a long body calls ``release_connection()``; the
next query takes a connection from the pool again (no new PostgreSQL
session, so it is cheap).

Without a pool it does nothing: the thread's persistent connection stays,
and closing it would only cost a reconnect.
"""

from __future__ import annotations

import select

import psycopg
from django.db import connection
from psycopg_pool import ConnectionPool

# How soon the pool tries PostgreSQL again after a failed connection attempt.
# psycopg_pool backs off from 1 s, doubling each time (1, 2, 4, … 32 s), so a
# pool whose database was gone for 30 s kept failing requests for up to half
# a minute after it came back. Retrying every half second costs a refused
# connection attempt per second while PostgreSQL is down.
POOL_RETRY_SECONDS = 0.5


def retry_pool_connections_steadily() -> None:
    """Make the pool retry a lost database at a steady pace (no growing backoff).

    Relies on ``psycopg_pool.base.AttemptWithBackoff``'s class attributes
    (``tests/test_connection_budget.py`` checks they are still there).
    """
    from psycopg_pool.base import AttemptWithBackoff

    AttemptWithBackoff.INITIAL_DELAY = POOL_RETRY_SECONDS
    AttemptWithBackoff.DELAY_BACKOFF = 1.0


def check_pooled_connection(conn: psycopg.Connection) -> None:
    """Raise if ``conn`` is not fit to hand out; no round trip when it is idle and well.

    psycopg_pool's own check (what Django's ``CONN_HEALTH_CHECKS`` turns on)
    runs an empty query on every checkout: a round trip to PostgreSQL that
    was a tenth of a small tus ``PATCH``. A pooled connection sits idle
    between requests, and an idle connection's socket has nothing to read
    unless the server sent something unasked: the goodbye and end of file of
    a backend ended by a restart or ``pg_terminate_backend``, or a crash's
    reset. So the socket is polled and the empty query runs only when
    something is waiting; on a dead connection it fails and the pool tries
    another, as before. Neither check sees at once a host that vanished
    without a reset: the request's query then fails and it answers 503.
    """
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the pooled connection is closed")
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        # A backend's goodbye, or a harmless notice the empty query reads past.
        ConnectionPool.check_connection(conn)


def check_pooled_connections_quickly() -> None:
    """Make the web tier's pool check its connections with ``check_pooled_connection``.

    Django builds the pool with psycopg_pool's round-trip check and offers
    no way to name another, so the (not yet opened) pool's ``_check`` is
    replaced (``tests/test_connection_budget.py`` checks it is still there).
    """
    pool = getattr(connection, "pool", None)  # PostgreSQL's wrapper has it
    if pool is not None:
        pool._check = check_pooled_connection


# The production web worker reads bodies up to this size before the view
# runs (web/gunicorn_worker.py, PREREAD_BODY_BYTES): they are in memory, and
# waiting for them costs no time, so there is nothing to give back for.
BODY_IN_MEMORY_BYTES = 64 * 1024


def release_connection(body_length: int | None = None) -> None:
    """Give the connection back to the pool, unless a transaction needs it.

    With ``body_length`` at most ``BODY_IN_MEMORY_BYTES`` it keeps it: the
    body is already here, and giving back and taking again would cost two
    round trips (the pool checks a connection it hands out).
    """
    if body_length is not None and body_length <= BODY_IN_MEMORY_BYTES:
        return
    if connection.connection is None or connection.in_atomic_block:
        return
    if connection.settings_dict.get("OPTIONS", {}).get("pool"):
        connection.close()
