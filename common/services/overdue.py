"""Work a lost message left behind: every worker watches for overdue deliveries.

A retry is run on time by the ETA message queued for it
(``scheduling.request_delivery_run_at``), but that message lives in the
memory of the worker that fetched it: a SIGKILL loses it, and so does any
broker reconnect (Celery clears its ETA timer when its consumer restarts,
and the SQL broker never hands a fetched message back). A killed worker's
claims, likewise, come due when their lease runs out, and no message
announces that. Left to the beat sweep, such work waited minutes.

So each worker's main process looks every ``WATCH_SECONDS`` for work that
is due and that no run has taken: a pending delivery past its
``next_attempt_at`` by more than a run's poll, or a claim whose lease ran
out (re-claimable, see ``claims``). If there is any it queues a run, unless
one is already waiting. It is one query on two partial indexes per second
per worker, and it needs nothing but the database: the first look after an
outage ends, or after a worker starts, finds what the faults left.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import psycopg

from common.services.claims import RECLAIMABLE_SQL
from common.services.sql import direct_connection_params

logger = logging.getLogger(__name__)

# How often a worker looks. A retry whose message was lost is sent at most
# this much (plus ``OVERDUE_SECONDS`` and a message's pick-up) after its time.
WATCH_SECONDS = 1.0
# A running delivery run claims due work every quarter second: only work
# older than this is left behind.
OVERDUE_SECONDS = 0.5

_OVERDUE_SQL = f"""
SELECT EXISTS (
    SELECT 1 FROM common_webhookdelivery
    WHERE status = 'pending' AND next_attempt_at <= now() - %(overdue)s * interval '1 second'
) OR (
    EXISTS (
        SELECT 1 FROM common_webhookdelivery
        WHERE status = 'sending' AND lease_expires_at <= now()
    )
    AND {RECLAIMABLE_SQL}
)
"""  # noqa: S608 - composed of module constants only


def overdue_work_exists(conn: psycopg.Connection) -> bool:
    """Whether due deliveries are waiting that no run has claimed."""
    row = conn.execute(
        _OVERDUE_SQL,
        {"overdue": OVERDUE_SECONDS},
    ).fetchone()
    return bool(row and row[0])


class OverdueWatch:
    """The watching thread of one worker process (see the module docstring).

    It keeps a connection of its own, named ``<application name> overdue-watch``
    in ``pg_stat_activity``, so the task connections of the pool stay the
    pool's, and a dead connection is simply opened again at the next look.
    """

    def __init__(self, *, interval: float = WATCH_SECONDS) -> None:
        self.interval = interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="overdue-watch", daemon=True)
        self._conn: psycopg.Connection | None = None
        self._failing = False

    def start(self) -> OverdueWatch:
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.stopped.set()
        self.thread.join(timeout)

    def _loop(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                self._look()
        finally:
            self._close()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            params = direct_connection_params()
            name = f"{params.pop('application_name', None) or 'doorito'} overdue-watch"
            self._conn = psycopg.connect(**params, autocommit=True, application_name=name[:63])
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def _look(self) -> None:
        """One look; queues a run when work is overdue."""
        from common.services.scheduling import request_delivery_run

        try:
            if overdue_work_exists(self._connection()):
                request_delivery_run()
        except Exception as exc:
            # The database or the broker is away: look again next second; the
            # first look after it is back queues the run. Said once per outage.
            if isinstance(exc, psycopg.Error):
                self._close()
            if not self._failing:
                logger.warning("Overdue-delivery watch failed, retrying every second: %r", exc)
            self._failing = True
            return
        if self._failing:
            logger.warning("Overdue-delivery watch: working again")
        self._failing = False


_watch: OverdueWatch | None = None
_watch_lock = threading.Lock()


def start_overdue_watch() -> OverdueWatch:
    """Start this process's watch (once; a second call returns the first)."""
    global _watch
    with _watch_lock:
        if _watch is None:
            _watch = OverdueWatch().start()
        return _watch


def stop_overdue_watch() -> None:
    """Stop this process's watch, if it runs (worker shutdown)."""
    global _watch
    with _watch_lock:
        watch, _watch = _watch, None
    if watch is not None:
        watch.stop()
