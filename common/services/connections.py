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

from django.db import connection


def release_connection() -> None:
    """Give the connection back to the pool, unless a transaction needs it."""
    if connection.connection is None or connection.in_atomic_block:
        return
    if connection.settings_dict.get("OPTIONS", {}).get("pool"):
        connection.close()
