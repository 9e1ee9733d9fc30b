"""Doorito's beat scheduler: django-celery-beat's, made to survive the database.

Measured on the stock ``DatabaseScheduler``: after PostgreSQL was stopped for
24 s and started again every send failed with ``channel disconnected`` until
beat was restarted by hand. A send that fails inside kombu's retry leaves the
cached producer bound to a channel whose connection is gone, and nothing in
beat ever builds a new one. This subclass:

- sends only while it holds the single-beat advisory lock
  (``common.services.beat.SchedulerLock``), checked every tick; a second
  beat waits and takes over within about a second of the lock's session
  ending;
- after (re)taking the lock re-reads the schedule from the database (the
  other beat, or none, ran in between) and drops its broker connection;
- drops the producer and its connection after a failed send, puts the
  entry's last run back, and tries it again after 1, 2, 5, 10, 30, then
  every 60 s until a send succeeds (WARNING first, ERROR from the third
  failed attempt on), so ``PeriodicTask.last_run_at`` only moves when a
  message was handed to the broker;
- writes ``common.models.BeatHeartbeat`` (holder, last tick, failing
  entries) for ``manage.py status``;
- waits for the database at start instead of exiting.

``celery -A boot beat --scheduler django_celery_beat.schedulers:DatabaseScheduler``
(the documented command) gets all of this but the wait at start:
``boot/celery.py`` adopts the stock ``DatabaseScheduler`` into this class on
``beat_init``, after the stock class has read the schedule.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import DatabaseError, InterfaceError, close_old_connections
from django.utils import timezone
from django_celery_beat import schedulers
from kombu.utils.functional import maybe_evaluate

from broker import dispose_engines
from common.services.beat import SchedulerLock, beat_heartbeat_record, lock_holder

logger = logging.getLogger(__name__)

LOCK_RETRY_SECONDS = 1.0
HEARTBEAT_SECONDS = 5.0
WAITING_LOG_SECONDS = 60.0
STARTUP_RETRY_SECONDS = 2.0
# Seconds before each new attempt at a send that failed; the last repeats.
RETRY_DELAYS = (1, 2, 5, 10, 30, 60)
ERROR_FROM_ATTEMPT = 3


class DatabaseScheduler(schedulers.DatabaseScheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._init_guard()
        super().__init__(*args, **kwargs)

    def _init_guard(self) -> None:
        """State of the lock and of failed sends (also run when adopting a stock scheduler)."""
        self._lock = SchedulerLock()
        # name -> {"since": ISO time, "attempts": int, "error": str}
        self._failing: dict[str, dict] = {}
        # name -> monotonic time of the next attempt at a failed send
        self._retry_at: dict[str, float] = {}
        # (name, last_run_at, total_run_count) before the entry now being sent.
        self._reserved: tuple[str, Any, int] | None = None
        self._last_heartbeat = 0.0
        self._last_waiting_log = 0.0

    # --- start-up ---------------------------------------------------------

    def setup_schedule(self) -> None:
        """Writes ``CELERY_BEAT_SCHEDULE`` to the database, waiting for the database if need be."""
        while True:
            try:
                self._initial_read = True
                super().setup_schedule()
                return
            except (DatabaseError, InterfaceError) as exc:
                logger.warning(
                    "beat: database unavailable at start (%s); trying again in %ss",
                    exc,
                    STARTUP_RETRY_SECONDS,
                )
                close_old_connections()
                time.sleep(STARTUP_RETRY_SECONDS)

    # --- the loop ---------------------------------------------------------

    def tick(self, *args: Any, **kwargs: Any) -> float:
        had_lock = self._lock.held
        if not self._lock.check():
            self._log_waiting(lost=had_lock)
            return LOCK_RETRY_SECONDS
        if not had_lock:
            self._took_lock()
        try:
            delay = super().tick(*args, **kwargs)
        except Exception as exc:
            # Reading the schedule failed (the database went away between the
            # lock check and here); the heap may have lost the popped entry.
            logger.warning("beat: tick failed (%s); trying again", exc)
            self._restore_reserved()
            self._heap = None
            close_old_connections()
            return LOCK_RETRY_SECONDS
        retry_in = self._send_retries()
        self._heartbeat()
        return delay if retry_in is None else min(delay, retry_in)

    def reserve(self, entry):
        self._reserved = (entry.name, entry.model.last_run_at, entry.model.total_run_count)
        return super().reserve(entry)

    def apply_entry(self, entry, producer=None) -> None:
        logger.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        try:
            self.apply_async(entry, producer=producer or self.producer, advance=False)
        except Exception as exc:
            self._send_failed(entry, exc)
        else:
            self._sent(entry)
        finally:
            self._reserved = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._lock.release()

    # --- helpers ----------------------------------------------------------

    def _took_lock(self) -> None:
        logger.info(
            "beat: holding the scheduler lock as %r; sending periodic tasks", self._lock.name
        )
        # Whatever this process thought it had sent is older than what the
        # database says now.
        self._dirty.clear()
        self._retry_at.clear()
        self._initial_read = True
        self._heap = None
        self._reset_publisher()
        self._last_heartbeat = 0.0

    def _log_waiting(self, *, lost: bool) -> None:
        now = time.monotonic()
        if not lost and now - self._last_waiting_log < WAITING_LOG_SECONDS:
            return
        self._last_waiting_log = now
        try:
            holder = lock_holder()
        except (DatabaseError, InterfaceError):
            close_old_connections()
            holder = None
        if holder:
            logger.info("beat: waiting for the scheduler lock, held by %r", holder)
        else:
            logger.info("beat: waiting for the scheduler lock (database unreachable or lock free)")

    def _reset_publisher(self) -> None:
        """Drops the cached producer, broker connection and pooled SQL connections.

        The next send builds new ones. The SQL transport's engines pool their
        connections per process; after an outage every pooled one is dead, and
        kombu's own retry of a send that met one failed again on the closed
        channel it left behind. Only beat's own process is affected.
        """
        self.__dict__.pop("producer", None)
        connection = self.__dict__.pop("connection", None)
        if connection is not None:
            try:
                connection.collect()
            except Exception:
                logger.debug("beat: closing the old broker connection failed", exc_info=True)
        dispose_engines(forget=False)

    def _restore_reserved(self) -> None:
        if self._reserved is None:
            return
        name, last_run_at, total_run_count = self._reserved
        self._reserved = None
        entry = (self._schedule or {}).get(name)
        if entry is not None:
            entry.model.last_run_at = last_run_at
            entry.model.total_run_count = total_run_count
            self._dirty.add(name)

    def _send_failed(self, entry, exc: Exception) -> None:
        # The failed send may already have been written as a run (Celery
        # syncs inside apply_async); write the previous run back.
        self._restore_reserved()
        self._do_sync()
        self._reset_publisher()
        state = self._failing.setdefault(
            entry.name, {"since": _now_iso(), "attempts": 0, "error": ""}
        )
        state["attempts"] += 1
        state["error"] = str(exc)[:500]
        delay = RETRY_DELAYS[min(state["attempts"], len(RETRY_DELAYS)) - 1]
        self._retry_at[entry.name] = time.monotonic() + delay
        level = logging.ERROR if state["attempts"] >= ERROR_FROM_ATTEMPT else logging.WARNING
        logger.log(
            level,
            "beat: sending %s failed (attempt %d, failing since %s): %s; trying again in %ss",
            entry.name,
            state["attempts"],
            state["since"],
            exc,
            delay,
        )
        self._heartbeat(force=True)

    def _sent(self, entry) -> None:
        self._retry_at.pop(entry.name, None)
        state = self._failing.pop(entry.name, None)
        if state is not None:
            logger.warning(
                "beat: sent %s after %d failed attempts since %s",
                entry.name,
                state["attempts"],
                state["since"],
            )
            self._heartbeat(force=True)
        # Record the run now, not up to three minutes later: status reads it,
        # and a beat taking over must not send it again.
        self._do_sync()

    def _send_retries(self) -> float | None:
        """Sends again every failed entry whose retry is due; seconds until the next one.

        The heap keeps the entry's regular next run; a retry that succeeds
        records a run like any send.
        """
        if not self._retry_at:
            return None
        now = time.monotonic()
        for name, at in list(self._retry_at.items()):
            entry = (self._schedule or {}).get(name)
            if entry is None:
                self._retry_at.pop(name)
                self._failing.pop(name, None)
            elif at <= now:
                self.reserve(entry)
                self.apply_entry(entry)
        if not self._retry_at:
            return None
        return max(0.0, min(self._retry_at.values()) - time.monotonic())

    def _heartbeat(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_heartbeat < HEARTBEAT_SECONDS:
            return
        if self._lock.acquired_at is None:
            return
        try:
            beat_heartbeat_record(
                holder=self._lock.name,
                acquired_at=self._lock.acquired_at,
                failing=self._failing,
            )
            self._last_heartbeat = now
        except (DatabaseError, InterfaceError) as exc:
            logger.warning("beat: cannot write the heartbeat (%s)", exc)
            close_old_connections()


def adopt(scheduler: Any) -> Any:
    """Turns a stock ``DatabaseScheduler`` (``--scheduler django_celery_beat...``) into ours.

    The documented beat command names the stock class; without this it would
    run without the lock and without recovering its broker connection.
    """
    scheduler = maybe_evaluate(scheduler)
    if type(scheduler) is schedulers.DatabaseScheduler:
        scheduler.__class__ = DatabaseScheduler
        scheduler._init_guard()
    elif not isinstance(scheduler, DatabaseScheduler):
        logger.warning(
            "beat: scheduler %s has no single-beat lock; use boot.beat:DatabaseScheduler",
            type(scheduler).__name__,
        )
    return scheduler


def _now_iso() -> str:
    return timezone.now().isoformat()
