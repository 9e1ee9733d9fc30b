"""Readiness checks: each returns None when healthy or a short reason string."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery import current_app
from django.db import connections
from django.utils import timezone

from broker import ping

logger = logging.getLogger(__name__)


def check_database() -> str | None:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        logger.warning("readiness: database unreachable: %s", exc)
        return f"database unreachable: {exc.__class__.__name__}"
    return None


def check_broker() -> str | None:
    try:
        ping()
    except Exception as exc:
        logger.warning("readiness: broker unreachable: %s", exc)
        return f"broker unreachable: {exc.__class__.__name__}"
    return None


def check_storage() -> str | None:
    from django.core.files.storage import default_storage

    try:
        default_storage.exists("readyz-probe")
    except Exception as exc:
        logger.warning("readiness: storage unreachable: %s", exc)
        return f"storage unreachable: {exc.__class__.__name__}"
    return None


READINESS_CHECKS: dict[str, Callable[[], str | None]] = {
    "database": check_database,
    "broker": check_broker,
    "storage": check_storage,
}


def scanner_state() -> dict[str, Any]:
    """The virus scanner as ``/readyz`` reports it, with the files it holds back.

    Informational, not a readiness check: with ``SCAN_FAIL_MODE=closed`` a
    web process still takes uploads while clamd is away (they wait in
    ``scanning``), so taking the process out of its load balancer would only
    refuse them.
    """
    from portal.selectors import held_files
    from portal.services.clamd import clamd_ping, scanning_enabled

    state: dict[str, Any] = {"configured": scanning_enabled()}
    if scanning_enabled():
        problem = clamd_ping()
        state["state"] = "ok" if problem is None else "unreachable"
        if problem:
            state["detail"] = problem
    else:
        state["state"] = "off"
    try:
        held = held_files()
        state["held_files"] = held.count
        state["oldest_held_seconds"] = round(held.oldest_age_seconds, 1)
    except Exception as exc:
        state["held_files"] = None
        state["detail"] = state.get("detail") or f"cannot count: {exc.__class__.__name__}"
    return state


def run_readiness_checks() -> dict[str, str]:
    """Runs every check; returns ``{name: "ok" | reason}``."""
    return {name: (check() or "ok") for name, check in READINESS_CHECKS.items()}


# A beat ticks at least every 5 s and stamps its heartbeat every 5 s; a minute
# of silence means it hangs (or cannot reach the database).
BEAT_STALE_SECONDS = 60


@dataclass(frozen=True)
class WorkerStatus:
    state: str  # "ok", "no answer", "cannot check" or "skipped"
    queue: str
    hostname: str | None = None
    detail: str = ""

    @property
    def healthy(self) -> bool:
        return self.state in {"ok", "cannot check", "skipped"}


@dataclass(frozen=True)
class BeatStatus:
    state: str  # "ok", "not running", "stale", "failing", "skipped" or "unknown"
    holder: str | None = None
    acquired_at: dt.datetime | None = None
    ticked_at: dt.datetime | None = None
    failing: dict[str, dict[str, Any]] = field(default_factory=dict)
    entries: dict[str, dt.datetime | None] = field(default_factory=dict)
    detail: str = ""

    @property
    def healthy(self) -> bool:
        return self.state in {"ok", "skipped"}


def worker_status(*, queue: str, timeout: float) -> WorkerStatus:
    """Whether a real worker consumes ``queue``: it must run the ``ping`` task.

    Celery remote control does not work on the SQL broker, so the proof is a
    task round trip. With ``CELERY_TASK_ALWAYS_EAGER`` the task would run in
    this very process and prove nothing, so it is not sent.
    """
    app = current_app
    if app.conf.task_always_eager:
        return WorkerStatus(
            state="cannot check",
            queue=queue,
            detail="CELERY_TASK_ALWAYS_EAGER is on: tasks run in the calling process",
        )
    try:
        # By name: services do not import tasks modules (the tasks import services).
        answer = app.send_task("common.tasks.ping", queue=queue).get(timeout=timeout)
    except Exception as exc:
        return WorkerStatus(
            state="no answer", queue=queue, detail=f"no answer within {timeout:g}s ({exc!r})"
        )
    return WorkerStatus(state="ok", queue=queue, hostname=answer.get("hostname"))


def beat_status() -> BeatStatus:
    """The beat holding the scheduler lock, its last tick, failing sends, and each entry's last run.

    ``entries`` is django-celery-beat's ``last_run_at``, which Doorito's
    scheduler moves only when a message reached the broker.
    """
    from django_celery_beat.models import PeriodicTask

    from common.models import BeatHeartbeat
    from common.services.beat import lock_holder

    try:
        holder = lock_holder()
        heartbeat = BeatHeartbeat.objects.filter(pk=1).first()
        entries = dict(
            PeriodicTask.objects.filter(enabled=True)
            .order_by("name")
            .values_list("name", "last_run_at")
        )
    except Exception as exc:
        logger.warning("status: cannot read beat state: %s", exc)
        return BeatStatus(state="unknown", detail=f"cannot read: {exc.__class__.__name__}")
    common = {
        "holder": holder,
        "entries": entries,
        "acquired_at": heartbeat.acquired_at if heartbeat else None,
        "ticked_at": heartbeat.ticked_at if heartbeat else None,
        "failing": heartbeat.failing if heartbeat else {},
    }
    if holder is None:
        return BeatStatus(state="not running", detail="no beat holds the scheduler lock", **common)
    age = (timezone.now() - heartbeat.ticked_at).total_seconds() if heartbeat else None
    if age is None or age > BEAT_STALE_SECONDS:
        return BeatStatus(state="stale", detail="no heartbeat for over a minute", **common)
    if common["failing"]:
        return BeatStatus(
            state="failing", detail=f"sends failing: {', '.join(common['failing'])}", **common
        )
    return BeatStatus(state="ok", **common)
