"""A delivery run: claim, send and record in a loop, each outcome as its request returns.

``deliver_outbox_events_task`` (and ``manage.py webhooks deliver``) run
``process_pending_events``. A run is a loop, not a batch: it claims due
deliveries for endpoints that have a free lane (at most
``DELIVERY_BATCH_SIZE`` events per claim), hands them to that endpoint's
lanes (``common.services.sending.Lanes``), and keeps claiming while
requests are in flight: as lanes free up, and every ``POLL_SECONDS`` for
work that came due meanwhile. Outcomes are written a handful at a time, at
most ``FLUSH_SECONDS`` after their request returned. So a slow endpoint
holds only its own lanes while every other endpoint's deliveries go on, and
a run never waits for its slowest request before recording the others.

A run ends when nothing is due and nothing is in flight, or stops claiming
after ``RUN_SECONDS`` (earlier under a short Celery soft time limit) and
ends once its requests have returned; due work left is handed to a run
queued at once. A database outage pauses a run rather than ending it
(``run_outage.Outage``): it holds its outcomes, writes them within a second of the
database's return, and goes on claiming.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import queue
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError

from common.services.claims import (
    claim_due_deliveries,
    count_due_events,
    lease_seconds,
)
from common.services.http import SEND_THREADS, background_executor
from common.services.recording import record_outcomes
from common.services.run_outage import Outage
from common.services.scheduling import request_delivery_run, request_delivery_run_at
from common.services.sending import RAMP_SECONDS, Claim, Lanes, Outcome, timeout_seconds

logger = logging.getLogger(__name__)

# Outcomes wait at most this long, or until this many are ready, before they
# are written: one transaction per handful keeps the write rate of a fast
# receiver, and a crash can repeat only what was in flight plus these.
FLUSH_SECONDS = 0.02
FLUSH_COUNT = 40
# How often a run with requests in flight looks for newly due work.
POLL_SECONDS = 0.25
# An endpoint whose requests have been taking less than this gets claims
# queued beyond its lanes (QUEUE_FACTOR times its width in all): they start
# within milliseconds, and fewer, bigger claims keep a fast receiver's rate.
# Any other endpoint gets no more claims than free lanes.
FAST_SECONDS = 0.1
QUEUE_FACTOR = 3
# After the first outcome arrives the loop lets more gather this long: one
# wake-up of the loop per handful, not per request (the loop and the lanes
# share one GIL).
COLLECT_TICK = 0.003
# A run stops claiming after this long (and hands over to a fresh run), so a
# worker child is not held by one task forever under a steady stream.
RUN_SECONDS = 120.0


@dataclass
class DeliveryRunResult:
    processed: int = 0
    delivered: int = 0
    failed: int = 0
    remaining: int = 0
    stopped_early: bool = False
    event_statuses: dict[Any, str] = field(default_factory=dict, repr=False)
    # The most sending threads each endpoint had at once.
    lanes: dict[Any, int] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, int]:
        return {
            "processed": self.processed,
            "delivered": self.delivered,
            "failed": self.failed,
            "remaining": self.remaining,
        }


def process_pending_events(
    batch_size: int = 20, *, continue_in_background: bool = False
) -> DeliveryRunResult:
    """One delivery run (see the module docstring); ``batch_size`` events per claim.

    With ``continue_in_background`` (the Celery task) a further run is queued
    as soon as due work is seen that this run cannot take, and retries are
    queued for their time, instead of waiting for the beat sweep.
    """
    return run_deliveries(
        batch_size=batch_size,
        request_followup=request_delivery_run if continue_in_background else None,
        request_retry_at=request_delivery_run_at if continue_in_background else None,
    )


def _time_limits() -> tuple[float, float]:
    """(hard, soft) time limits of the running task: its own, else the settings'."""
    from celery import current_task

    hard = soft = None
    # The proxy is falsy outside a task.
    if current_task and current_task.request is not None:
        hard, soft = (current_task.request.timelimit or (None, None))[:2]
    return (
        float(hard or settings.CELERY_TASK_TIME_LIMIT),
        float(soft or settings.CELERY_TASK_SOFT_TIME_LIMIT),
    )


def _claim_seconds() -> float:
    """How long a run may claim: ``RUN_SECONDS``, and done before the soft limit
    leaves too little time for the last requests to return."""
    _hard, soft = _time_limits()
    return max(min(RUN_SECONDS, soft - timeout_seconds() - 5.0), 0.0)


def _grace_seconds() -> float:
    """Time between the soft and the hard limit that in-flight requests may use."""
    hard, soft = _time_limits()
    return max(hard - soft - 2.0, 0.5)


def _safe_call(func: Callable[[], None]) -> None:
    try:
        func()
    except Exception:
        logger.exception("Queueing a delivery run failed; the sweep will pick the work up")


class _Run:
    def __init__(
        self,
        *,
        batch_size: int,
        request_followup: Callable[[], None] | None,
        request_retry_at: Callable[[dt.datetime], None] | None,
    ) -> None:
        self.batch_size = batch_size
        self.request_followup = request_followup
        self.request_retry_at = request_retry_at
        # A queued claim must start while its lease still covers a request.
        self.lanes = Lanes(send_by=max(lease_seconds() - timeout_seconds() - 2.0, 0.5))
        self.outstanding: Counter[Any] = Counter()  # per endpoint: claimed, no outcome yet
        self.slowest: dict[Any, float] = {}  # per endpoint: decaying max of request seconds
        self.done: list[tuple[Claim, Outcome]] = []
        self.released: list[Claim] = []
        self.first_done_at = 0.0
        self.statuses: dict[Any, str] = {}
        self.attempted: set[Any] = set()
        self.followup_requested = False
        self.retries_requested: set[int] = set()
        self.more_due = True
        self.last_claim = -math.inf
        self.outage: Outage | None = None

    # -- claiming --------------------------------------------------------
    def allowed(self, endpoint_id: Any) -> int:
        """Claims an endpoint may have outstanding: its lanes, more if it is fast."""
        slowest = self.slowest.get(endpoint_id)
        if slowest is not None and slowest < FAST_SECONDS:
            return max(self.lanes.width * QUEUE_FACTOR, 2 * self.batch_size)
        return self.lanes.width

    def free(self) -> dict[Any, int]:
        return {
            ep: self.allowed(ep) - self.outstanding[ep]
            for ep in self.slowest.keys() | {ep for ep, n in self.outstanding.items() if n}
        }

    def free_total(self) -> int:
        return SEND_THREADS * QUEUE_FACTOR + 2 * self.batch_size - sum(self.outstanding.values())

    def claim(self) -> int:
        batch = claim_due_deliveries(
            batch_size=self.batch_size, free_lanes=self.free(), total=self.free_total()
        )
        self.last_claim = time.monotonic()
        self.more_due = batch.more_due
        if batch.claims:
            for c in batch.claims:
                self.outstanding[c.endpoint_id] += 1
            self.lanes.add(batch.claims)
        if batch.more_due and not self.followup_requested and self.request_followup:
            # Work this run has no lane for: another worker child may take it.
            # Publishing takes tens of ms from a worker child: off this thread.
            background_executor().submit(_safe_call, self.request_followup)
            self.followup_requested = True
        return len(batch.claims)

    def should_claim(self, now: float) -> bool:
        if self.free_total() <= 0:
            return False
        if self.more_due:
            # Claim once an endpoint has half its allowance free (or one not
            # in flight here may have work): fewer, bigger claims.
            free = self.free()
            if len(free) < 2 or any(n * 2 >= self.allowed(ep) for ep, n in free.items()):
                return True
        return now - self.last_claim >= POLL_SECONDS

    # -- recording -------------------------------------------------------
    def collect(self, timeout: float) -> None:
        """Take the outcomes that have arrived, waiting up to ``timeout`` for the first."""
        try:
            item = self.lanes.done.get(timeout=timeout) if timeout > 0 else None
        except queue.Empty:
            return
        items = [item] if item is not None else []
        if item is not None and self.in_flight() > 1:
            time.sleep(COLLECT_TICK)
        while True:
            try:
                items.append(self.lanes.done.get_nowait())
            except queue.Empty:
                break
        for claim, outcome in items:
            self.outstanding[claim.endpoint_id] -= 1
            if outcome is None:
                self.released.append(claim)  # waited too long; given back unsent
                continue
            if not self.done:
                self.first_done_at = time.monotonic()
            self.done.append((claim, outcome))
            if not outcome.skipped:
                seconds = outcome.duration_ms / 1000
                before = self.slowest.get(claim.endpoint_id, seconds)
                self.slowest[claim.endpoint_id] = max(seconds, before * 0.8)

    def should_flush(self, now: float) -> bool:
        if self.released:
            return True
        if not self.done:
            return False
        return (
            len(self.done) >= FLUSH_COUNT
            or now - self.first_done_at >= FLUSH_SECONDS
            or not any(self.outstanding.values())
        )

    def flush(self, released: list[Claim] | None = None) -> None:
        done, self.done = self.done, []
        back, self.released = self.released + list(released or []), []
        try:
            recorded = record_outcomes(done=done, released=back)
        except BaseException:
            # Written again by the next flush.
            self.done = done + self.done
            self.released = back + self.released
            raise
        self.statuses.update(recorded.event_statuses)
        self.attempted.update(c.event_id for c, _ in done)
        if recorded.retries:
            self._request_retries(recorded.retries)

    def _request_retries(self, retries: list[dt.datetime]) -> None:
        """One run per second that holds a retry, not one per flush.

        A run queued for a second claims every retry due by then.
        """
        retry_at = self.request_retry_at
        if retry_at is None:
            return
        for second in sorted({math.ceil(when.timestamp()) for when in retries}):
            if second in self.retries_requested:
                continue
            self.retries_requested.add(second)
            at = dt.datetime.fromtimestamp(second, tz=dt.UTC)
            _safe_call(functools.partial(retry_at, at))

    def in_flight(self) -> int:
        return sum(self.outstanding.values())


def run_deliveries(
    *,
    batch_size: int,
    request_followup: Callable[[], None] | None = None,
    request_retry_at: Callable[[dt.datetime], None] | None = None,
) -> DeliveryRunResult:
    """The loop of a delivery run (see the module docstring)."""
    run = _Run(
        batch_size=batch_size,
        request_followup=request_followup,
        request_retry_at=request_retry_at,
    )
    result = DeliveryRunResult()
    claim_until = time.monotonic() + _claim_seconds()
    claiming = True
    try:
        run.claim()
        while True:
            now = time.monotonic()
            claiming = claiming and now < claim_until
            if run.outage is not None:
                if not run.outage.wait_out(run, claiming=claiming):
                    break  # nothing held, nothing in flight, claiming over
                continue
            wants_claim = claiming and run.should_claim(now)
            try:
                # Outcomes are written before the next claim: a crash then can
                # repeat only what is in flight, never what returned before it.
                if run.should_flush(now) or (wants_claim and run.done):
                    run.flush()
                idle = not run.in_flight() and not run.done
                if claiming and (idle or wants_claim):
                    if not run.claim() and idle:
                        break  # nothing due, nothing in flight
                elif idle:
                    break
            except (OperationalError, InterfaceError) as exc:
                run.outage = Outage(exc)
                continue
            widening = run.lanes.widen()
            run.collect(_wait_seconds(run, claiming=claiming, widening=widening))
    except SoftTimeLimitExceeded:
        result.stopped_early = True
        _wind_down(run)
    result.lanes = dict(run.lanes.max_lanes)
    result.event_statuses = run.statuses
    result.processed = len(run.attempted)
    result.delivered = sum(1 for e in run.attempted if run.statuses.get(e) == "delivered")
    result.failed = sum(1 for e in run.attempted if run.statuses.get(e) == "failed")
    result.remaining = count_due_events()
    if (
        request_followup is not None
        and result.remaining
        and result.processed
        and not run.followup_requested
    ):
        _safe_call(request_followup)
    return result


def _wait_seconds(run: _Run, *, claiming: bool, widening: bool) -> float:
    """How long to wait for an outcome before the loop looks at its state again."""
    now = time.monotonic()
    waits = [POLL_SECONDS]
    if run.done:
        waits.append(FLUSH_SECONDS - (now - run.first_done_at))
    if widening:
        waits.append(RAMP_SECONDS)
    if claiming and run.free_total() > 0:
        waits.append(POLL_SECONDS - (now - run.last_claim))
    return max(min(waits), 0.0)


def _wind_down(run: _Run) -> None:
    """The soft time limit fired: start nothing more, let in-flight requests finish
    (until shortly before the hard limit), record them, give the rest back."""
    run.lanes.stop.set()
    unstarted = run.lanes.unstarted()
    for claim in unstarted:
        run.outstanding[claim.endpoint_id] -= 1
    logger.warning(
        "Soft time limit: finishing %d in-flight request(s), releasing %d unstarted claim(s)",
        run.in_flight(),
        len(unstarted),
    )
    deadline = time.monotonic() + _grace_seconds()
    while run.in_flight() and time.monotonic() < deadline:
        run.collect(min(0.1, deadline - time.monotonic()))
    if run.done or unstarted:
        run.flush(released=unstarted)
