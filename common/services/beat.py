"""The single-beat lock and beat's own record of what it did.

Only one beat may send periodic tasks (two send each of them twice). The
lock is a session-level PostgreSQL advisory lock held on a connection of its
own: Django closes and reopens its connections whenever it likes, and a
session lock goes with the session that took it. PostgreSQL drops the lock
when that session ends, whether the beat exited, was killed (SIGKILL
included: the kernel closes the socket) or lost the database, so a waiting
beat takes over without anyone cleaning up.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import zlib
from typing import Any

import psycopg
from django.db import connections
from django.utils import timezone

from common.models import BeatHeartbeat
from common.services.sql import direct_connection_params

logger = logging.getLogger(__name__)

# One advisory-lock key per database. Below 2**31, so pg_locks shows it as
# classid 0, objid LOCK_KEY (see ``lock_holder``).
LOCK_KEY = zlib.crc32(b"doorito:celery-beat") & 0x7FFFFFFF
APPLICATION_NAME_PREFIX = "doorito-beat"


class SchedulerLock:
    """The advisory lock that makes one beat the only one sending."""

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or f"{APPLICATION_NAME_PREFIX} {socket.gethostname()}:{os.getpid()}"
        self._conn: psycopg.Connection | None = None
        self.acquired_at: dt.datetime | None = None

    @property
    def held(self) -> bool:
        """Whether this process believed it held the lock at the last ``check``."""
        return self.acquired_at is not None

    def check(self) -> bool:
        """Holds the lock now: proves the session alive, or tries to take the lock.

        A dead session means the lock is gone (another beat may have it
        already), so it is dropped and taken again from scratch. Never raises
        for database trouble: False means "do not schedule".
        """
        if self._conn is not None and self.acquired_at is not None:
            try:
                self._conn.execute("SELECT 1")
                return True
            except psycopg.Error as exc:
                logger.error(
                    "beat: lost the scheduler lock (%s); not sending periodic tasks "
                    "until it is taken again",
                    exc,
                )
                self.release()
        return self._try_acquire()

    def _try_acquire(self) -> bool:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(
                    **direct_connection_params(), autocommit=True, application_name=self.name[:63]
                )
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()
        except psycopg.Error as exc:
            logger.warning("beat: cannot reach the database for the scheduler lock (%s)", exc)
            self.release()
            return False
        if row and row[0]:
            self.acquired_at = timezone.now()
            return True
        return False

    def release(self) -> None:
        """Ends the lock's session (and so the lock)."""
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None
        self.acquired_at = None


def lock_holder() -> str | None:
    """The ``application_name`` of the session holding the beat lock, if any.

    Read from PostgreSQL itself, so a beat that died holds nothing here even
    if its heartbeat row is recent.
    """
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = %s"
            " AND l.objsubid = 1"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [LOCK_KEY],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def beat_heartbeat_record(
    *, holder: str, acquired_at: dt.datetime, failing: dict[str, dict[str, Any]]
) -> None:
    """Stamps the lock holder's row; one UPDATE (an INSERT the first time)."""
    BeatHeartbeat.objects.update_or_create(
        pk=1,
        defaults={
            "holder": holder,
            "acquired_at": acquired_at,
            "ticked_at": timezone.now(),
            "failing": failing,
        },
    )
