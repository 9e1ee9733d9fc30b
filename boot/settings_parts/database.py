"""The PostgreSQL database Django uses (``DATABASE_*``)."""

from __future__ import annotations

import dj_database_url
from configurations import values

from boot.settings_parts.environment import env

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/doorito"


class DatabaseSettings:
    DATABASE_URL = env(default=DEFAULT_DATABASE_URL)
    DATABASE_CONN_MAX_AGE = env(values.IntegerValue, 60)
    # Connections of one process shared by its threads (psycopg's pool),
    # at most this many; 0 = none, each thread keeps its own for
    # DATABASE_CONN_MAX_AGE. The production web command turns it on
    # (deploy/gunicorn.conf.py): its threads wait on clients far more than on
    # the database, so a pool bounds the web tier's connections whatever the
    # thread count (docs/operations.md, "Sizing database connections").
    DATABASE_POOL_SIZE = env(values.IntegerValue, 0)
    # A pooled connection idle this long is closed (above one per process).
    DATABASE_POOL_IDLE_SECONDS = env(values.IntegerValue, 60)
    # How long a request waits for a pooled connection before it fails
    # (503 with Retry-After, like any database outage): also how long a
    # request takes to be told the database is down.
    DATABASE_POOL_TIMEOUT = env(values.FloatValue, 3.0)
    # The per-event outbox statement runs as a server-side prepared statement
    # (common/services/sql.py). Off for a pooler that cannot carry them.
    DATABASE_PREPARED_STATEMENTS = env(values.BooleanValue, True)

    @property
    def DATABASES(self):
        pooled = self.DATABASE_POOL_SIZE > 0
        db = dj_database_url.parse(
            self.DATABASE_URL,
            # A pooled connection goes back to the pool after each request;
            # the pool checks one before handing it out (an empty query), so
            # after a database restart no request gets a dead connection.
            conn_max_age=0 if pooled else self.DATABASE_CONN_MAX_AGE,
            conn_health_checks=True,
        )
        options = db.setdefault("OPTIONS", {})
        if pooled:
            options["pool"] = {
                "min_size": 1,
                "max_size": self.DATABASE_POOL_SIZE,
                "max_idle": self.DATABASE_POOL_IDLE_SECONDS,
                "timeout": self.DATABASE_POOL_TIMEOUT,
            }
        if self.DATABASE_PREPARED_STATEMENTS:
            # Django turns psycopg's prepared statements off (threshold None),
            # which also ignores ``prepare=True``. Its own cursors bind on the
            # client and are never prepared; a threshold out of reach keeps
            # psycopg from preparing anything but what asks for it.
            options.setdefault("prepare_threshold", 2**31 - 1)
        return {"default": db}
