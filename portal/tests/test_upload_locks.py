"""The upload lock's connection: a read with the lock, a write with the release (``tus.locks``)."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from django.db import DatabaseError, OperationalError
from django.utils import timezone

from common.services.sql import direct_connection_params
from portal.models import UploadSession
from portal.services.tus import locks
from portal.services.tus.errors import LockedError
from portal.services.tus.locks import Statement, upload_session_lock
from portal.services.tus.sessions import upload_session_from_rows, upload_session_read

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def other():
    """A connection of another process."""
    with psycopg.connect(**direct_connection_params(), autocommit=True) as conn:
        yield conn


@pytest.fixture
def session(user) -> UploadSession:
    return UploadSession.objects.create(
        owner=user, length=10, filename="a.bin", expires_at=timezone.now()
    )


def _try_lock(conn: psycopg.Connection, session_id: uuid.UUID) -> bool:
    key = locks._lock_key(session_id)
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
    taken = bool(row and row[0])
    if taken:
        conn.execute("SELECT pg_advisory_unlock(%s)", [key])
    return taken


def _move(session: UploadSession, offset: int) -> Statement:
    return Statement(
        'UPDATE portal_uploadsession SET "offset" = %(offset)s WHERE id = %(id)s RETURNING id',
        {"offset": offset, "id": session.id},
    )


def test_the_read_comes_back_with_the_lock_as_the_orm_would_load_it(session, user):
    read = upload_session_read(owner=user, upload_id=session.id)
    with upload_session_lock(session.id, read=read) as lock:
        loaded = upload_session_from_rows(lock.rows, read)
    fresh = UploadSession.objects.get(id=session.id)
    for field in UploadSession._meta.concrete_fields:
        assert getattr(loaded, field.attname) == getattr(fresh, field.attname), field.name
    assert loaded.expires_at.tzinfo is not None


def test_a_busy_lock_reads_nothing_and_refuses(session, user, other):
    other.execute("SELECT pg_advisory_lock(%s)", [locks._lock_key(session.id)])
    read = upload_session_read(owner=user, upload_id=session.id)
    with pytest.raises(LockedError), upload_session_lock(session.id, read=read):
        pass


def test_release_with_commits_the_write_before_the_lock_is_free(session, other):
    with upload_session_lock(session.id) as lock:
        assert not _try_lock(other, session.id)
        rows = lock.release_with(_move(session, 7))
        assert rows == [(session.id,)]
        # Free at once, and whoever takes it sees the write.
        assert _try_lock(other, session.id)
        row = other.execute(
            'SELECT "offset" FROM portal_uploadsession WHERE id = %s', [session.id]
        ).fetchone()
        assert row == (7,)
    assert _try_lock(other, session.id)


def test_a_release_with_a_failing_write_writes_nothing_and_frees_the_lock(session, other):
    broken = Statement(
        "UPDATE portal_uploadsession SET length = length / 0 WHERE id = %(id)s", {"id": session.id}
    )
    with pytest.raises(DatabaseError), upload_session_lock(session.id) as lock:
        lock.release_with(broken)
    assert UploadSession.objects.get(id=session.id).length == 10
    assert _try_lock(other, session.id)
    # The next request gets a fresh connection.
    with upload_session_lock(session.id) as lock:
        assert lock.release_with(_move(session, 3)) == [(session.id,)]


def test_a_release_after_the_connection_was_lost_writes_nothing(session, other):
    with pytest.raises(OperationalError), upload_session_lock(session.id) as lock:
        locks.close_lock_connection()
        lock.release_with(_move(session, 9))
    assert UploadSession.objects.get(id=session.id).offset == 0
    assert _try_lock(other, session.id)


def test_a_write_that_would_wait_on_a_row_lock_fails_instead_of_holding_the_process(
    session, other, monkeypatch
):
    monkeypatch.setattr(locks, "LOCK_CONNECTION_LOCK_TIMEOUT", "200ms")
    locks.close_lock_connection()  # the next one gets the shorter timeout
    other.execute("BEGIN")
    other.execute("SELECT 1 FROM portal_uploadsession WHERE id = %s FOR UPDATE", [session.id])
    try:
        with pytest.raises(OperationalError), upload_session_lock(session.id) as lock:
            lock.release_with(_move(session, 4))
    finally:
        other.execute("ROLLBACK")
        locks.close_lock_connection()
    assert UploadSession.objects.get(id=session.id).offset == 0
    assert _try_lock(other, session.id)
