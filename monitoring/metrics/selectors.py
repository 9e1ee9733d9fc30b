"""Database reads behind the scrape-time gauges; each is bounded and index-backed.

A scrape runs them all, every 15-60 s, so none may grow with the data it
describes except where noted (the file aggregate, see ``file_totals``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import connection

if TYPE_CHECKING:
    from portal.selectors import FileTotals

# Counting more than this per status or queue costs a scan of the backlog; a
# gauge stuck at the cap already says "very big".
COUNT_CAP = 10_000


@dataclass(frozen=True)
class DeliveryCounts:
    pending: int  # exact up to COUNT_CAP (the pending partial index)
    sending: int  # exact up to COUNT_CAP (the sending partial index)
    failed: int  # exact up to COUNT_CAP (the failed partial index)
    estimated_rows: int  # planner's estimate of all rows (pg_class.reltuples)


def delivery_counts() -> DeliveryCounts:
    """Deliveries by status, counted only where a partial index holds them.

    ``delivered`` rows are nearly all rows; counting them would scan the
    table, so the total is the planner's estimate (right after ANALYZE,
    drifting between autovacuum runs) and ``delivered`` is not exported.
    """
    from common.models import WebhookDelivery

    # order_by(): the model's default ordering made each count sort every
    # row of its status first; without it the partial index answers alone
    # (an index-only scan once autovacuum has set the visibility map).
    by_status = {
        status: WebhookDelivery.objects.filter(status=status)
        .order_by()
        .values("pk")[:COUNT_CAP]
        .count()
        for status in ("pending", "sending", "failed")
    }
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)",
            [WebhookDelivery._meta.db_table],
        )
        row = cursor.fetchone()
    estimate = max(0, int(row[0])) if row and row[0] is not None else 0
    return DeliveryCounts(**by_status, estimated_rows=estimate)


def file_totals() -> FileTotals:
    """Files by status and bytes currently stored, exact.

    The sum of the running totals that triggers on ``portal_uploadfile`` keep
    (``FileTotalsDelta``): it costs the rows written since the last fold plus
    one per owner and status, not the files kept. An aggregate over the
    files took ~20 ms at 100 000 files, half of a scrape's budget
    (bench/metrics.py).
    """
    from portal.selectors import file_totals_for_owner

    return file_totals_for_owner(owner=None)


def beat_last_runs() -> dict[str, dt.datetime | None]:
    """Each enabled beat entry's last run (moved only when its message reached the broker)."""
    from django_celery_beat.models import PeriodicTask

    return dict(PeriodicTask.objects.filter(enabled=True).values_list("name", "last_run_at"))


def broker_queue_depths() -> dict[str, int] | None:
    """Visible (not yet fetched) messages per queue, capped; None with another broker.

    Read on the broker's own connection (it may be another database), through
    the partial index on visible messages; consumed rows waiting to be pruned
    are not counted.
    """
    from broker import queue_depths

    return queue_depths(cap=COUNT_CAP)
