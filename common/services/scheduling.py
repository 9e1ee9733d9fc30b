"""When delivery runs happen: after a commit, to continue, at a retry's time, when overdue.

This module is the one place that asks for runs. Every run is only a
shortcut: the beat sweep (``deliver-outbox-events-sweep``, the same task)
finds all due work anyway, so a lost message delays delivery, never loses
it. Runs are sent by task name through the current Celery app, so no
service imports a tasks module (the tasks import the services). This is
also the one place that asks the broker whether a run is already waiting
(``broker.task_waiting``).

Overdue work. A retry is run on time by the ETA message queued for it
(``request_delivery_run_at``), but that message lives in the memory of the
worker that fetched it: a SIGKILL loses it, and so does any broker reconnect
(Celery clears its ETA timer when its consumer restarts, and the SQL broker
never hands a fetched message back). A killed worker's claims, likewise,
come due when their lease runs out, and no message announces that. Left to
the beat sweep, such work waited minutes. So each worker's main process
(``OverdueWatch``, started on Celery's ``worker_ready`` by
``CommonConfig.ready()``) looks every ``WATCH_SECONDS`` for work that is due
and that no run has taken: a pending delivery past its ``next_attempt_at``
by more than a run's poll, or a claim whose lease ran out (re-claimable, see
``claims``). If there is any it queues a run, unless one is already waiting.
It is one query on two partial indexes per second per worker, and it needs
nothing but the database: the first look after an outage ends, or after a
worker starts, finds what the faults left.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from typing import Any

import psycopg
from celery import current_app
from celery import signals as celery_signals
from django.conf import settings
from django.db import connection, transaction

from broker import task_waiting
from common.services.claims import RECLAIMABLE_SQL
from common.services.sql import direct_connection_params

logger = logging.getLogger(__name__)

DELIVER_TASK = "common.tasks.deliver_outbox_events_task"


def delivery_queue() -> str:
    """The queue a delivery run goes to (its route, else the default queue)."""
    route = settings.CELERY_TASK_ROUTES.get(DELIVER_TASK, {})
    return str(route.get("queue", settings.CELERY_TASK_DEFAULT_QUEUE))


def _send(*, eta: dt.datetime | None = None) -> None:
    current_app.send_task(DELIVER_TASK, eta=eta, queue=delivery_queue())


def _run_waiting() -> bool:
    """Whether a run is queued and not yet fetched (only the SQL broker can tell)."""
    try:
        return task_waiting(current_app, task_name=DELIVER_TASK, queue=delivery_queue())
    except Exception:
        logger.warning("Could not look for a waiting delivery run; queueing one", exc_info=True)
        return False


def _run_now() -> None:
    """Queue a delivery run, unless one is queued and not yet picked up.

    A waiting run claims after this moment, so it takes this transaction's
    events (or a follow-up's remaining work) as well. Under load (every web
    request committing one event, or a backlog) the queue would otherwise
    fill with runs that each find one event or none (one event per
    transaction from one process: ~250 → ~400 delivered/s on two cores).
    With eager tasks (Dev) the run happens here, in the calling process.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        # Called like a function: the task's body, in this process, now.
        current_app.tasks[DELIVER_TASK]()
        return
    if _run_waiting():
        return
    _send()


def request_delivery_on_commit() -> None:
    """Ask for a delivery run once the current transaction commits.

    One message per transaction, however many events it wrote.
    """
    pending = getattr(connection, "run_on_commit", [])
    if any(func is _run_now for _, func, _ in pending):
        return
    transaction.on_commit(_run_now, robust=True)


def request_delivery_run() -> None:
    """Queue a delivery run now (a run that leaves due work behind)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        # In-process runs would recurse; the next emit or sweep continues.
        return
    _run_now()


def request_delivery_run_at(when: dt.datetime) -> None:
    """Queue a delivery run for ``when`` (a retry's ``next_attempt_at``).

    The worker that fetches it holds it until then (Celery's ETA), so a
    failed delivery is tried again on its schedule instead of at the next
    sweep. If that worker dies, or its broker connection drops, the message
    is gone (the SQL broker consumes on fetch); the workers' overdue watch
    (``common.services.scheduling``) queues a run for it within seconds.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return
    _send(eta=when)


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


def _on_worker_ready(**kwargs: Any) -> None:
    """Look for due work that lost its message, every second, from this worker.

    A killed worker's claims come due when their lease runs out, and the ETA
    messages it (or any worker whose broker connection dropped) had fetched
    are gone; the watch finds both without waiting for the sweep (minutes).
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return
    start_overdue_watch()


def _on_worker_shutdown(**kwargs: Any) -> None:
    stop_overdue_watch()


def connect_worker_signals() -> None:
    """Called from ``CommonConfig.ready()``: worker processes start and stop the watch."""
    celery_signals.worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid="overdue.start")
    celery_signals.worker_shutdown.connect(
        _on_worker_shutdown, weak=False, dispatch_uid="overdue.stop"
    )
