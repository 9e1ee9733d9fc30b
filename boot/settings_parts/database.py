"""The PostgreSQL database Django uses (``DATABASE_*``)."""

from __future__ import annotations

import dj_database_url
from configurations import values

from boot.settings_parts.environment import env

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/doorito"


class DatabaseSettings:
    DATABASE_URL = env(default=DEFAULT_DATABASE_URL)
    DATABASE_CONN_MAX_AGE = env(values.IntegerValue, 60)
    # The per-event outbox statement runs as a server-side prepared statement
    # (common/services/sql.py). Off for a pooler that cannot carry them.
    DATABASE_PREPARED_STATEMENTS = env(values.BooleanValue, True)

    @property
    def DATABASES(self):
        db = dj_database_url.parse(
            self.DATABASE_URL, conn_max_age=self.DATABASE_CONN_MAX_AGE, conn_health_checks=True
        )
        if self.DATABASE_PREPARED_STATEMENTS:
            # Django turns psycopg's prepared statements off (threshold None),
            # which also ignores ``prepare=True``. Its own cursors bind on the
            # client and are never prepared; a threshold out of reach keeps
            # psycopg from preparing anything but what asks for it.
            db.setdefault("OPTIONS", {}).setdefault("prepare_threshold", 2**31 - 1)
        return {"default": db}
