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
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from uuid import UUID

import psycopg
from django.db import OperationalError, connection

from portal.services.tus.errors import LockedError

logger = logging.getLogger(__name__)


def _lock_key(session_id: UUID) -> int:
    """A signed 64-bit advisory-lock key private to upload sessions."""
    digest = hashlib.blake2b(f"portal.upload_session:{session_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


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
            params = connection.get_connection_params()
            for key in ("cursor_factory", "context", "pool"):
                params.pop(key, None)
            params["application_name"] = "doorito upload locks"
            self._conn = psycopg.connect(**params, autocommit=True)
            self.generation += 1
        return self._conn

    def try_lock(self, key: int) -> int:
        """Take ``key``; the connection generation it was taken on, or 0 if busy."""
        with self._mutex:
            if key in self._held:
                return 0
            try:
                conn = self._connection()
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
            except psycopg.Error as exc:
                self.forget()
                raise OperationalError(str(exc)) from exc
            if not row or not row[0]:
                return 0
            self._held.add(key)
            return self.generation

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
    """A taken upload lock; ``check()`` before recording what was done under it."""

    def __init__(self, session_id: UUID, key: int, generation: int) -> None:
        self.session_id = session_id
        self.key = key
        self.generation = generation

    def check(self) -> None:
        if not _holder.still_held(self.key, self.generation):
            # The database went away under the request: answered like any
            # outage (503, Retry-After); the client resumes from HEAD's offset.
            raise OperationalError(f"lost the lock of upload session {self.session_id}")


@contextmanager
def upload_session_lock(session_id: UUID) -> Iterator[HeldLock]:
    """Hold the session's advisory lock or raise ``LockedError`` at once."""
    key = _lock_key(session_id)
    holder = _holder
    generation = holder.try_lock(key)
    if not generation:
        raise LockedError(details={"upload_id": str(session_id)})
    try:
        yield HeldLock(session_id, key, generation)
    finally:
        holder.unlock(key, generation)


@contextmanager
def upload_session_locks(session_ids: Sequence[UUID]) -> Iterator[list[HeldLock]]:
    """Hold the locks of several sessions (taken in the order given: sort to avoid deadlock)."""
    with ExitStack() as stack:
        yield [stack.enter_context(upload_session_lock(session_id)) for session_id in session_ids]
