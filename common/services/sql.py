"""Raw statements of the outbox on Django's connection, optionally prepared.

The outbox's hot statements are written in SQL (one round trip each, see
``outbox`` and ``delivery``). They run on Django's own connection, so they
take part in the caller's transaction like any other query, and errors come
out as Django's database exceptions.

``prepare=True`` makes a statement a server-side prepared statement: parsed
and planned once per connection, then executed from a generic plan. Only the
statement that runs once per event (emit) asks for it: planning it each time
cost PostgreSQL ~0.15 ms per event, three times its execution. The
statements that run once per delivery run are planned each time with their
actual values, because a generic plan made while a table was small (a fresh
install) stays in use as the table grows: a sequential scan planned over a
hundred events was still chosen over fifty thousand.

Prepared statements need a direct connection or a pooler that supports them
(PgBouncer 1.21+ with ``max_prepared_statements``); with
``DATABASE_PREPARED_STATEMENTS=false`` everything is planned each time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import connection, connections
from django.db.models import Model


def fetch_all(
    sql: str, params: Sequence[Any] | Mapping[str, Any], *, prepare: bool = False
) -> list[tuple[Any, ...]]:
    """Execute ``sql`` (bound on the server); its rows, or ``[]`` for a statement without any."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=prepare)
        # Not ``cursor.description``: it builds a Column per column (0.25 ms
        # for a wide row), and only the result's status is wanted.
        result = cursor.pgresult
        if result is None or result.status != psycopg.pq.ExecStatus.TUPLES_OK:
            return []
        return cursor.fetchall()


def direct_connection_params() -> dict[str, Any]:
    """Django's own connection parameters, for a plain psycopg connection.

    For connections a process keeps beside Django's (beat's lock, a worker's
    overdue watch): Django closes and reopens its own whenever it likes. The
    keepalive and ``tcp_user_timeout`` values make a connection to a host
    that vanished (no RST) fail within about 15 s instead of the kernel's two
    hours: until then beat would believe it still held the lock.
    """
    params = connections["default"].get_connection_params()
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    params.update(
        connect_timeout=5,
        keepalives=1,
        keepalives_idle=5,
        keepalives_interval=2,
        keepalives_count=3,
        tcp_user_timeout=10_000,
    )
    return params


@dataclass(frozen=True)
class ModelColumns[M: Model]:
    """A model's columns for a hand-written ``SELECT``, and its rows back as instances.

    For the few reads on a hot path (a tus ``PATCH`` reads its token and its
    upload session): compiling the same queryset cost ~0.8 ms a time on this
    machine, more than the query; the SQL is written once and the row is made
    an instance as the ORM would (``from_db`` and each field's converters).
    """

    model: type[M]
    select: str
    attnames: tuple[str, ...]
    converters: tuple[tuple[Callable[..., Any], ...], ...]
    fields: tuple[Any, ...]

    def instance(self, row: Sequence[Any], start: int = 0) -> M:
        """The instance made of ``row[start:start + len(attnames)]``."""
        values = list(row[start : start + len(self.attnames)])
        for i, converters in enumerate(self.converters):
            for convert in converters:
                values[i] = convert(values[i], self.fields[i], connection)
        return self.model.from_db(connection.alias, list(self.attnames), values)


@functools.cache
def model_columns[M: Model](model: type[M], alias: str) -> ModelColumns[M]:
    """``model``'s concrete columns as ``alias."column", ...`` (computed once per model)."""
    fields = tuple(model._meta.concrete_fields)
    converters = []
    for field in fields:
        col = field.get_col(alias)
        converters.append(
            tuple(connection.ops.get_db_converters(col) + field.get_db_converters(connection))
        )
    return ModelColumns(
        model=model,
        select=", ".join(f'{alias}."{field.column}"' for field in fields),
        attnames=tuple(field.attname for field in fields),
        converters=tuple(converters),
        fields=fields,
    )
