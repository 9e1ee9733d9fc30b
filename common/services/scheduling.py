"""Asking for delivery runs: after a commit, to continue, at a retry's time, when overdue.

Every run is only a shortcut: the beat sweep (``deliver-outbox-events-sweep``)
finds all due work anyway, so a lost message delays delivery, never loses
it. Runs are sent by task name through the Celery app, so no service module
imports a tasks module (the tasks import the services). This is also the one
place that asks the broker whether a run is already waiting
(``boot.broker.task_waiting``).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import connection, transaction

logger = logging.getLogger(__name__)

DELIVER_TASK = "common.tasks.deliver_outbox_events_task"


def delivery_queue() -> str:
    """The queue a delivery run goes to (its route, else the default queue)."""
    route = settings.CELERY_TASK_ROUTES.get(DELIVER_TASK, {})
    return str(route.get("queue", settings.CELERY_TASK_DEFAULT_QUEUE))


def _send(*, eta: dt.datetime | None = None) -> None:
    from boot.celery import app

    app.send_task(DELIVER_TASK, eta=eta, queue=delivery_queue())


def _run_waiting() -> bool:
    """Whether a run is queued and not yet fetched (only the SQL broker can tell)."""
    from boot.broker import task_waiting
    from boot.celery import app

    try:
        return task_waiting(app, task_name=DELIVER_TASK, queue=delivery_queue())
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
        from common.services.dispatch import process_pending_events

        process_pending_events(batch_size=settings.DELIVERY_BATCH_SIZE)
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
    (``common.services.overdue``) queues a run for it within seconds.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return
    _send(eta=when)
