"""Serialising the requests of one upload with PostgreSQL advisory locks.

Session-level advisory locks, so one can be held while bytes stream to
storage with no transaction open, and a crashed process's locks go away with
its connection. They live on one connection per process, not on the
request's own: a request streaming a body then holds no connection of
Django's (with the web tier's pool it gives its connection back while it
waits on the client, see ``common.services.connections``), so slow uploads
cannot use up the database's connections. PostgreSQL lets a session take a
lock it already holds, so the process also remembers which keys its threads
hold and refuses a second taker itself. Busy means ``423 Locked`` at once,
never a wait.

If that connection breaks, its locks are gone: ``HeldLock.check`` tells the
request that took one, which then records nothing (an ``OperationalError``,
so ``503`` like any database outage) and the client resumes from the
stored offset.

Round trips are the largest cost of a small tus ``PATCH``, so the lock
connection carries its statements too, in psycopg's pipeline mode:

- a read to run right after the lock (``read=``), in the same round trip;
  a statement of its own, it sees every change committed before the lock
  was granted. A ``PATCH`` reads its session that way;
- a write to commit right before the release (``HeldLock.release_with``),
  in one round trip as ``BEGIN; write; COMMIT; unlock``: whoever takes the
  lock next sees the write. A ``PATCH`` that does not complete its upload
  records its bytes that way.

The lock connection loads values as Django's connections do (Django's
adapters, its time zone), so the rows make the same model instances.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from django.db import DatabaseError, OperationalError, connection

from portal.services.tus.errors import LockedError

logger = logging.getLogger(__name__)

# The lock connection is shared by a process's threads: a statement on it
# that waited on a row lock would hold every upload of the process. Its
# statements never should (the session's row is written under the upload's
# lock); if one does, it fails after this long (503, the client resumes).
LOCK_CONNECTION_LOCK_TIMEOUT = "5s"


def _lock_key(session_id: UUID) -> int:
    """A signed 64-bit advisory-lock key private to upload sessions."""
    digest = hashlib.blake2b(f"portal.upload_session:{session_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


@dataclass(frozen=True, slots=True)
class Statement:
    """A statement for the lock connection: a read after a lock, a write before a release."""

    sql: str
    params: Mapping[str, Any]


def _as_django_error(exc: psycopg.Error) -> DatabaseError:
    """Django's exception for ``exc``: a lost connection is an outage (503), the rest a bug.

    Not Django's own ``wrap_database_errors``: that belongs to Django's
    connection and would mark it as failed (and checked again at the
    request's end) for an error of this one.
    """
    if isinstance(exc, psycopg.OperationalError):
        return OperationalError(str(exc))
    return DatabaseError(str(exc))


class _LockHolder:
    """The process's lock connection and the keys its threads hold on it."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._held: set[int] = set()
        # Counts connections: a lock taken on an earlier one is lost.
        self.generation = 0

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
                self._held.clear()
            # Django's adapters ("context") and prepare threshold stay, so a
            # read here loads values as on Django's own connections.
            params = connection.get_connection_params()
            for key in ("cursor_factory", "pool"):
                params.pop(key, None)
            params["application_name"] = "doorito upload locks"
            conn = psycopg.connect(**params, autocommit=True)
            # Django's timestamptz loader labels values with its time zone
            # without converting them: the session must be in that zone.
            conn.execute(
                "SELECT set_config('TimeZone', %s, false), set_config('lock_timeout', %s, false)",
                [connection.timezone_name, LOCK_CONNECTION_LOCK_TIMEOUT],
            )
            self._conn = conn
            self.generation += 1
        return self._conn

    def try_lock(
        self, key: int, read: Statement | None = None
    ) -> tuple[int, list[tuple[Any, ...]]]:
        """Take ``key`` (and run ``read`` after it, in the same round trip).

        The connection generation the lock was taken on, or 0 if busy; and
        the read's rows (``[]`` when busy).
        """
        with self._mutex:
            if key in self._held:
                return 0, []
            try:
                conn = self._connection()
                with conn.pipeline():
                    locked = conn.execute("SELECT pg_try_advisory_lock(%s)", [key])
                    rows = conn.execute(read.sql, read.params, prepare=True) if read else None
                row = locked.fetchone()
                read_rows = rows.fetchall() if rows is not None else []
            except psycopg.Error as exc:
                self.forget()
                raise _as_django_error(exc) from exc
            if not row or not row[0]:
                return 0, []
            self._held.add(key)
            return self.generation, read_rows

    def write_and_unlock(
        self, key: int, generation: int, write: Statement
    ) -> list[tuple[Any, ...]]:
        """Commit ``write``, then release ``key``, in one round trip; the write's rows."""
        with self._mutex:
            conn = self._conn
            if generation != self.generation or key not in self._held or conn is None:
                raise OperationalError("the upload lock was lost with its connection")
            self._held.discard(key)
            try:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    cursor = conn.execute(write.sql, write.params, prepare=True)
                    conn.execute("COMMIT")
                    conn.execute("SELECT pg_advisory_unlock(%s)", [key])
                result = cursor.pgresult
                if result is None or result.status != psycopg.pq.ExecStatus.TUPLES_OK:
                    return []
                return cursor.fetchall()
            except psycopg.Error as exc:
                # Whether the write committed is unknown if the connection
                # broke: dropping it releases the lock either way (and this
                # process's other locks, whose requests then answer 503).
                logger.warning("Recording under upload lock %s failed: %s", key, exc)
                self.forget()
                raise _as_django_error(exc) from exc

    def unlock(self, key: int, generation: int) -> None:
        with self._mutex:
            if generation != self.generation or key not in self._held:
                return  # taken on a connection that is gone, and the lock with it
            self._held.discard(key)
            try:
                self._connection().execute("SELECT pg_advisory_unlock(%s)", [key])
            except psycopg.Error:
                logger.warning("Could not release upload lock %s; dropping the connection", key)
                self.forget()

    def still_held(self, key: int, generation: int) -> bool:
        with self._mutex:
            conn = self._conn
            return (
                generation == self.generation
                and key in self._held
                and conn is not None
                and not conn.closed
                and not conn.broken
            )

    def forget(self) -> None:
        """Drop the connection (its locks go with it)."""
        conn, self._conn = self._conn, None
        self._held.clear()
        if conn is not None:
            with suppress(psycopg.Error):
                conn.close()

    def close(self) -> None:
        with self._mutex:
            self.forget()


_holder = _LockHolder()


def _after_fork() -> None:
    # A forked child (a Celery pool process) must not share the parent's
    # connection: it gets its own when it first locks.
    global _holder
    _holder = _LockHolder()


os.register_at_fork(after_in_child=_after_fork)


def close_lock_connection() -> None:
    """Close this process's lock connection (tests, before dropping a database)."""
    _holder.close()


class HeldLock:
    """A taken upload lock; ``check()`` before recording what was done under it.

    ``rows`` holds what the read handed to ``upload_session_lock`` returned.
    """

    def __init__(
        self, session_id: UUID, key: int, generation: int, rows: list[tuple[Any, ...]]
    ) -> None:
        self.session_id = session_id
        self.key = key
        self.generation = generation
        self.rows = rows
        self.released = False

    def check(self) -> None:
        if not _holder.still_held(self.key, self.generation):
            # The database went away under the request: answered like any
            # outage (503, Retry-After); the client resumes from HEAD's offset.
            raise OperationalError(f"lost the lock of upload session {self.session_id}")

    def release_with(self, write: Statement) -> list[tuple[Any, ...]]:
        """Commit ``write`` and release the lock after it, in one round trip; its rows.

        Raises ``OperationalError`` (and writes nothing) if the lock was
        already lost. The lock is released whatever happens; if the
        connection breaks on the way, whether the write committed is unknown,
        as for any statement whose answer is lost (the client asks ``HEAD``).
        """
        self.released = True
        return _holder.write_and_unlock(self.key, self.generation, write)


@contextmanager
def upload_session_lock(session_id: UUID, read: Statement | None = None) -> Iterator[HeldLock]:
    """Hold the session's advisory lock or raise ``LockedError`` at once.

    ``read`` runs right after the lock is granted, in the same round trip;
    its rows are the held lock's ``rows``.
    """
    key = _lock_key(session_id)
    holder = _holder
    generation, rows = holder.try_lock(key, read)
    if not generation:
        raise LockedError(details={"upload_id": str(session_id)})
    held = HeldLock(session_id, key, generation, rows)
    try:
        yield held
    finally:
        if not held.released:
            holder.unlock(key, generation)


@contextmanager
def upload_session_locks(session_ids: Sequence[UUID]) -> Iterator[list[HeldLock]]:
    """Hold the locks of several sessions (taken in the order given: sort to avoid deadlock)."""
    with ExitStack() as stack:
        yield [stack.enter_context(upload_session_lock(session_id)) for session_id in session_ids]
