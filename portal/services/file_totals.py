"""Folding the file totals' delta rows, so summing them stays cheap.

The triggers of migrations 0004 and 0006 append a row per owner and status
to ``FileTotalsDelta`` for every statement that changes files; summing them
is the exact totals (``/metrics`` sums all of them, the dashboard and the
files API one owner's). Folding replaces the rows it can see by one per owner
and status.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction

from portal.models import FileTotalsDelta

# Any fixed number: the advisory lock that keeps two folds from deleting the
# same rows in different orders (and deadlocking).
_FOLD_LOCK = 0x646F6F72_746F746C

_FOLD_SQL = """
WITH folded AS (DELETE FROM {table} {where} RETURNING owner_id, status, files, bytes)
INSERT INTO {table} (owner_id, status, files, bytes)
SELECT owner_id, status, sum(files), sum(bytes) FROM folded GROUP BY owner_id, status
HAVING sum(files) <> 0 OR sum(bytes) <> 0
"""

# One owner's rows past this many are folded by the reader that found them
# (the dashboard, the files API): reading 200 rows costs well under 1 ms.
FOLD_OWNER_OVER = 200


def file_totals_fold(*, owner: Any = None) -> bool:
    """Fold the delta rows (only `owner`'s when given); False when another fold runs.

    One statement: rows a concurrent writer appends after it started are not
    deleted (its snapshot does not see them) and stay to be summed, so the
    totals never change. A fold of everyone rewrites one row per owner and
    status; an owner's fold touches only that owner's rows, so a page can
    afford it.
    """
    table = connection.ops.quote_name(FileTotalsDelta._meta.db_table)
    where, params = ("WHERE owner_id = %s", [owner.pk]) if owner is not None else ("", [])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_FOLD_LOCK])
        if not cursor.fetchone()[0]:
            return False
        cursor.execute(_FOLD_SQL.format(table=table, where=where), params)
    return True
