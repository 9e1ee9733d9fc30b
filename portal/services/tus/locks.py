"""Serialising the requests of one upload with PostgreSQL advisory locks.

Session-level (not transaction-level) locks, so one can be held while bytes
stream to storage with no transaction open; a crashed process's lock goes
away with its connection. Busy means ``423 Locked`` at once, never a wait.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from uuid import UUID

from django.db import DatabaseError, connection

from portal.services.tus.errors import LockedError

logger = logging.getLogger(__name__)


def _lock_key(session_id: UUID) -> int:
    """A signed 64-bit advisory-lock key private to upload sessions."""
    digest = hashlib.blake2b(f"portal.upload_session:{session_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


@contextmanager
def upload_session_lock(session_id: UUID) -> Iterator[None]:
    """Hold the session's advisory lock or raise ``LockedError`` at once."""
    key = _lock_key(session_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        (acquired,) = cursor.fetchone()
    if not acquired:
        raise LockedError(details={"upload_id": str(session_id)})
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        except DatabaseError:
            # The connection is gone, and the lock with it.
            logger.warning("Could not release the lock of upload session %s", session_id)


@contextmanager
def upload_session_locks(session_ids: Sequence[UUID]) -> Iterator[None]:
    """Hold the locks of several sessions (taken in the order given: sort to avoid deadlock)."""
    with ExitStack() as stack:
        for session_id in session_ids:
            stack.enter_context(upload_session_lock(session_id))
        yield
