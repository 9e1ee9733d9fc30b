"""kombu's SQLAlchemy transport, woken by PostgreSQL ``LISTEN``/``NOTIFY``.

The stock transport finds new messages by polling: an idle consumer sleeps
``polling_interval`` between rounds of queries, so every message waits up to
that long and a short interval costs queries all day. Here a publisher adds
``pg_notify`` to the transaction that inserts the message (PostgreSQL
delivers it on commit, never for a rolled-back insert) and a consumer with
nothing to fetch waits on a ``LISTEN`` connection instead of sleeping. A
message is picked up within milliseconds; the interval only bounds how long
a consumer waits when no notification comes (a message written by another
kombu client, or a lost listener connection), so it can stay long.

Everything else (tables, visibility, acks) is kombu's, plus one partial
index on the visible messages. On a database other than PostgreSQL this
behaves exactly like the stock transport.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from dataclasses import dataclass
from queue import Empty
from typing import Any

import psycopg
from kombu.transport import sqlalchemy as kombu_sqlalchemy
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads
from sqlalchemy import Connection, Engine, TextClause, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "doorito_broker"
# A full prefetch window frees up when a pool process accepts a task: check
# again soon rather than after a whole polling interval.
FULL_WINDOW_WAIT = 0.005


@functools.lru_cache(maxsize=8)
def _is_postgresql(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def _quote(identifier: str) -> str:
    """A quoted SQL identifier.

    Only kombu's table names (its models, set by transport options, never by
    a request) are formatted into SQL here; hence the ``noqa: S608`` lines.
    """
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True)
class Tables:
    """kombu's table and sequence names, read from its models, not repeated here.

    The names are transport options (``queue_tablename``,
    ``message_tablename``), and kombu registers its model classes once per
    process, so the first channel's names hold for every channel after it.
    """

    message: str
    queue: str
    message_id_sequence: str

    @classmethod
    def of(cls, channel: kombu_sqlalchemy.Channel) -> Tables:
        messages = channel.message_cls.__table__
        return cls(
            message=messages.name,
            queue=channel.queue_cls.__table__.name,
            message_id_sequence=messages.c.id.default.name,
        )

    @property
    def visible_index(self) -> str:
        return f"{self.message}_visible_queue_id"


@dataclass(frozen=True)
class _Statements:
    put: TextClause
    get: TextClause
    visible_index: TextClause
    task_waiting: TextClause


@functools.lru_cache(maxsize=4)
def _statements(tables: Tables) -> _Statements:
    m = _quote(tables.message)
    sequence = _quote(tables.message_id_sequence).replace("'", "''")
    return _Statements(
        # kombu's models give ids from a sequence, not a column default.
        # One autocommitted statement each instead of kombu's ORM round trips
        # (look the queue up, insert or lock-and-update, commit): the worker's
        # main process fetches every message and every run publishes one.
        put=text(
            f"WITH m AS (INSERT INTO {m} (id, queue_id, visible, payload, version)"  # noqa: S608
            f" VALUES (nextval('{sequence}'), :queue_id, true, :payload, 1) RETURNING id)"
            " SELECT pg_notify(:channel, '') FROM m"
        ),
        # SKIP LOCKED: several workers never wait for each other's fetches.
        get=text(
            f"UPDATE {m} SET visible = false, timestamp = LOCALTIMESTAMP"  # noqa: S608
            f" WHERE id = (SELECT id FROM {m} WHERE queue_id = :queue_id AND visible"
            " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
            " RETURNING payload"
        ),
        # kombu indexes ``visible`` alone, so finding the oldest visible
        # message of a queue walked every consumed row still in the table (up
        # to a prune interval's worth: tens of thousands under load). This
        # partial index holds only the visible ones.
        visible_index=text(
            f"CREATE INDEX IF NOT EXISTS {_quote(tables.visible_index)}"
            f" ON {m} (queue_id, id) WHERE visible"
        ),
        # A message for the task, not fetched by any worker yet and not held
        # back by an ETA (a retry's countdown). The LIKE narrows the rows
        # before the JSON parse.
        task_waiting=text(
            f"SELECT EXISTS (SELECT 1 FROM {m} WHERE queue_id = :queue_id AND visible"  # noqa: S608
            " AND payload LIKE :pattern ESCAPE '\\'"
            " AND payload::jsonb -> 'headers' ->> 'task' = :task"
            " AND (payload::jsonb -> 'headers' ->> 'eta') IS NULL)"
        ),
    )


_indexed: set[str] = set()


def _forget_pooled_connections_after_fork() -> None:
    """A forked child must not use the connections its parent pooled.

    kombu keeps one engine per broker URL for the whole process, and a fork
    copies it with the parent's pooled connections: a Celery pool child
    forked after the main process had used the broker (a replaced or
    recycled child) checked out the parent's PostgreSQL session (same
    backend pid; ``tests/test_broker_transport.py``), and two processes
    writing to one socket corrupt each other's protocol stream.
    ``dispose(close=False)`` gives the child an empty pool without closing
    what the parent still uses.
    """
    for engine, _ in list(kombu_sqlalchemy.Channel._engines.values()):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_pooled_connections_after_fork)


def _ensure_visible_index(engine: Engine, tables: Tables) -> None:
    """Add the partial index once per database (kombu made the tables just before)."""
    exists = text("SELECT to_regclass(:name) IS NOT NULL")
    name = _quote(tables.visible_index)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if conn.execute(exists, {"name": name}).scalar():
            return
        try:
            conn.execute(_statements(tables).visible_index)
        except DBAPIError:
            # Another process made it at the same moment.
            if not conn.execute(exists, {"name": name}).scalar():
                raise


class Channel(kombu_sqlalchemy.Channel):
    """kombu's channel with single-statement put/get on PostgreSQL.

    Same tables and the same states as kombu (a fetched message is marked
    invisible, ``prune_broker_messages_task`` deletes it later), so the
    stock transport and this one can share a database.
    """

    def __init__(self, connection, **kwargs):
        super().__init__(connection, **kwargs)
        self._queue_ids: dict[str, int] = {}

    def _fast(self) -> bool:
        return _is_postgresql(self.connection.client.hostname)

    @functools.cached_property
    def _tables(self) -> Tables:
        return Tables.of(self)

    def _open(self):
        engine_and_session = super()._open()
        url = self.connection.client.hostname
        if url not in _indexed and self._fast():
            _ensure_visible_index(engine_and_session[0], self._tables)
            _indexed.add(url)
        return engine_and_session

    def _engine(self) -> Engine:
        """The engine kombu keeps for this channel's broker URL (one per URL and process)."""
        engine: Engine = self._open()[0]
        return engine

    def _queue_id(self, queue: str) -> int:
        if queue not in self._queue_ids:
            # Roll back on failure: committing a session whose connection
            # died raised PendingRollbackError in place of the disconnect,
            # which kombu does not treat as a connection error and so never
            # retried (the first send after a database restart failed).
            try:
                self._queue_ids[queue] = self._get_or_create(queue).id
            except BaseException:
                self.session.rollback()
                raise
            self.session.commit()
        return self._queue_ids[queue]

    # kombu reads through its ORM session and, when it only read, never ends
    # the transaction: a channel that declared a queue (every publisher does,
    # once) or asked for its size stayed "idle in transaction" for good,
    # holding a snapshot that kept VACUUM from removing any dead row in the
    # whole database. Each of these now ends its transaction.
    def _new_queue(self, queue, **kwargs):
        self._queue_id(queue)

    def _size(self, queue):
        try:
            return super()._size(queue)
        finally:
            self.session.commit()

    def _autocommit(self) -> Connection:
        return self._engine().connect().execution_options(isolation_level="AUTOCOMMIT")

    def _put(self, queue, payload, **kwargs):
        if not self._fast():
            return super()._put(queue, payload, **kwargs)
        params = {
            "queue_id": self._queue_id(queue),
            "payload": dumps(payload),
            "channel": NOTIFY_CHANNEL,
        }
        put = _statements(self._tables).put
        with self._autocommit() as conn:
            try:
                conn.execute(put, params)
            except IntegrityError:
                # The queue row went away (tables reset by hand): make it again.
                self._queue_ids.pop(queue, None)
                params["queue_id"] = self._queue_id(queue)
                conn.execute(put, params)
        return None

    def _get(self, queue):
        if not self._fast():
            return super()._get(queue)
        with self._autocommit() as conn:
            row = conn.execute(
                _statements(self._tables).get, {"queue_id": self._queue_id(queue)}
            ).first()
        if row is None:
            raise Empty()
        return loads(bytes_to_str(row[0]))


def task_waiting(app: Any, *, task_name: str, queue: str) -> bool:
    """Whether a message for ``task_name`` waits in ``queue``, unfetched and due now.

    A publisher can skip a message that would only repeat one still waiting:
    whatever the waiting one does, it does after this call. Only the SQL
    transport on PostgreSQL can tell; on any other broker this is False.
    """
    with app.pool.acquire(block=True) as conn:
        channel = conn.default_channel
        if not isinstance(channel, Channel) or not channel._fast():
            return False
        escaped = task_name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params = {
            "queue_id": channel._queue_id(queue),
            "pattern": f'%"task": "{escaped}"%',
            "task": task_name,
        }
        with channel._autocommit() as db:
            return bool(db.execute(_statements(channel._tables).task_waiting, params).scalar())


def _worker_stopping() -> bool:
    """A Celery worker was told to stop: hand control back to its loop now.

    The worker checks its stop flag only between ``drain_events`` calls, which
    it makes with a 2 s timeout; without this a shutdown waited out the rest.
    """
    from celery.worker import state

    # Identity, as Celery checks: a stop flag is an exit code and may be 0.
    return any(
        flag is not None and flag is not False
        for flag in (state.should_stop, state.should_terminate)
    )


class Transport(kombu_sqlalchemy.Transport):
    Channel = Channel

    def __init__(self, client, **kwargs):
        super().__init__(client, **kwargs)
        self._listener: psycopg.Connection | None = None

    def drain_events(self, connection, timeout=None):
        started = time.monotonic()
        while True:
            try:
                self.cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                pass
            elapsed = time.monotonic() - started
            if (timeout is not None and elapsed >= timeout) or _worker_stopping():
                raise TimeoutError()
            limit = self.polling_interval or 1.0
            if timeout is not None:
                limit = min(limit, timeout - elapsed)
            self._wait_for_messages(connection.client.hostname, limit)

    def _wait_for_messages(self, url: str, limit: float) -> None:
        channels: list[Channel] = self.channels or []
        if not any(ch._consumers and ch.qos.can_consume() for ch in channels):
            time.sleep(min(limit, FULL_WINDOW_WAIT))
            return
        listener = self._listen(url)
        if listener is None:
            time.sleep(limit)
            return
        try:
            # Notifications that arrived while messages were being fetched
            # may announce ones not fetched yet: look again before waiting.
            if any(True for _ in listener.notifies(timeout=0)):
                return
            for _ in listener.notifies(timeout=limit, stop_after=1):
                pass
        except psycopg.Error as exc:
            logger.warning("Broker listener connection lost (%s); polling until it is back", exc)
            self._close_listener()
            time.sleep(limit)

    def _listen(self, url: str) -> psycopg.Connection | None:
        if self._listener is not None and not self._listener.closed:
            return self._listener
        if not _is_postgresql(url):
            return None
        conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            self._listener = psycopg.connect(conninfo, autocommit=True)
            self._listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except psycopg.Error as exc:
            logger.warning("Cannot listen for broker notifications (%s); polling instead", exc)
            self._close_listener()
        return self._listener

    def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(psycopg.Error):
                self._listener.close()
        self._listener = None

    def close_connection(self, connection):
        self._close_listener()
        super().close_connection(connection)
