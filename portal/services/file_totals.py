"""Folding the file totals' delta rows, so summing them stays cheap.

The triggers of migration 0004 append a row per status to
``FileTotalsDelta`` for every statement that changes files; summing them is
the exact totals. Folding replaces the rows it can see by one per status.
"""

from __future__ import annotations

from django.db import connection, transaction

from portal.models import FileTotalsDelta

# Any fixed number: the advisory lock that keeps two folds from deleting the
# same rows in different orders (and deadlocking).
_FOLD_LOCK = 0x646F6F72_746F746C

_FOLD_SQL = """
WITH folded AS (DELETE FROM {table} RETURNING status, files, bytes)
INSERT INTO {table} (status, files, bytes)
SELECT status, sum(files), sum(bytes) FROM folded GROUP BY status
HAVING sum(files) <> 0 OR sum(bytes) <> 0
"""


def file_totals_fold() -> bool:
    """Fold the delta rows into one per status; False when another fold runs.

    One statement: rows a concurrent writer appends after it started are not
    deleted (its snapshot does not see them) and stay to be summed, so the
    totals never change.
    """
    table = connection.ops.quote_name(FileTotalsDelta._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_FOLD_LOCK])
        if not cursor.fetchone()[0]:
            return False
        cursor.execute(_FOLD_SQL.format(table=table))
    return True
