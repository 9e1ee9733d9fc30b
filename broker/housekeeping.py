"""Upkeep of the SQL broker's tables, through the broker's own database connection.

kombu marks a fetched message invisible instead of deleting it, and fetching
slows down as those rows pile up (hundreds of fetches/s on an empty table, a
handful with a million consumed rows), so consumed rows are pruned often and
in bounded chunks. Every statement here runs on the SQLAlchemy engine kombu
keeps for the broker URL, never on Django's connection: the broker may live
in another database than Django's, and then only its own engine reaches it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kombu.transport import sqlalchemy as kombu_sqlalchemy
from sqlalchemy import text

from broker.transport import Channel, Tables, _quote


@dataclass(frozen=True)
class PruneResult:
    deleted: int
    remaining: int


def _app(app: Any | None) -> Any:
    """The app given, else the current one (``boot``'s in every Doorito process)."""
    if app is None:
        from celery import current_app

        return current_app
    return app


def uses_database(app: Any | None = None) -> bool:
    """Whether the Celery app's broker is kombu's SQL transport (a ``sqla+…`` URL)."""
    return str(_app(app).conf.broker_url or "").startswith(("sqla+", "sqlalchemy+"))


@contextmanager
def _postgresql_channel(app: Any | None) -> Iterator[Channel | None]:
    """A channel of the app's broker when it is the SQL one on PostgreSQL, else None.

    The URL is looked at first, so another broker is never connected to.
    """
    if not uses_database(app):
        yield None
        return
    with _app(app).pool.acquire(block=True) as conn:
        channel = conn.default_channel
        yield channel if isinstance(channel, Channel) and channel._fast() else None


def ping(app: Any | None = None) -> None:
    """Raise unless the broker answers a query.

    kombu connects lazily and its SQL channel opens no database connection
    until it runs a statement, so a channel alone said "ok" for a broker
    database that does not exist. On the SQL broker a ``SELECT 1`` through
    its own engine proves it; other brokers connect for real in
    ``ensure_connection``.
    """
    with _app(app).connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=5)
        conn.default_channel  # noqa: B018  (opens the AMQP/Redis channel)
    with _postgresql_channel(app) as channel:
        if channel is not None:
            with channel._autocommit() as db:
                db.execute(text("SELECT 1"))


def prune_consumed_broker_messages(
    app: Any | None = None, *, batch_size: int = 10_000, max_batches: int = 50
) -> PruneResult:
    """Delete consumed (invisible) messages; keep the rest.

    Chunks of ``batch_size`` in their own transactions keep each lock short,
    and SKIP LOCKED never waits for a fetch in flight. A no-op on any other
    broker (and on the SQL transport over another database than PostgreSQL).
    """
    with _postgresql_channel(app) as channel:
        if channel is None:
            return PruneResult(deleted=0, remaining=0)
        m = _quote(Tables.of(channel).message)
        delete = text(
            f"DELETE FROM {m} WHERE id IN (SELECT id FROM {m} WHERE visible = false"  # noqa: S608
            " LIMIT :limit FOR UPDATE SKIP LOCKED)"
        )
        deleted = 0
        with channel._autocommit() as db:
            for _ in range(max_batches):
                count = db.execute(delete, {"limit": batch_size}).rowcount
                deleted += count
                if count < batch_size:
                    break
            left = db.execute(text(f"SELECT count(*) FROM {m} WHERE visible = false")).scalar()  # noqa: S608
    return PruneResult(deleted=deleted, remaining=int(left or 0))


def queue_depths(app: Any | None = None, *, cap: int) -> dict[str, int] | None:
    """Visible (not yet fetched) messages per queue, each counted up to ``cap``.

    None with another broker. Reads the partial index on visible messages
    that the transport creates, so consumed rows waiting to be pruned cost
    nothing.
    """
    with _postgresql_channel(app) as channel:
        if channel is None:
            return None
        tables = Tables.of(channel)
        m, q = _quote(tables.message), _quote(tables.queue)
        depths = text(
            f"SELECT q.name, (SELECT count(*) FROM (SELECT 1 FROM {m} m"  # noqa: S608
            f" WHERE m.queue_id = q.id AND m.visible LIMIT :cap) v) FROM {q} q"
        )
        with channel._autocommit() as db:
            return {name: int(n) for name, n in db.execute(depths, {"cap": cap})}


def dispose_engines(*, forget: bool = True) -> None:
    """Close the pooled connections of every broker engine in this process.

    Needed before dropping a database the broker used (tests, benchmarks)
    and after an outage, when every pooled connection is dead. ``forget``
    also drops the engines, so the next channel builds a new one.
    """
    engines = kombu_sqlalchemy.Channel._engines
    for engine, _ in list(engines.values()):
        engine.dispose()
    if forget:
        engines.clear()
