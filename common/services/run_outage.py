"""A delivery run that lost the database waits it out instead of ending.

Split from ``dispatch`` so the run loop reads on its own; the run hands
itself in through ``PausableRun``, the few members this needs.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

# How long a run that lost the database waits for it (see ``Outage``).
HOLD_SECONDS = 180.0


class PausableRun(Protocol):
    done: list[Any]
    released: list[Any]
    outage: Outage | None

    def collect(self, timeout: float) -> None: ...

    def flush(self, released: list[Any] | None = None) -> None: ...

    def claim(self) -> int: ...

    def in_flight(self) -> int: ...


class Outage:
    """The database went away mid-run: the run waits it out instead of ending.

    Claiming stops; requests already claimed are still sent (receivers do not
    need the database, and a claim that waited past its lease is given back
    unsent as usual), and their outcomes are held. Every second the run tries
    to write them (or, holding none, to claim): the first success ends the
    outage and the run goes on where it was, so work that came due meanwhile
    is claimed within a second of the database's return, by a run that was
    already there (a worker's broker connection and its fetched messages do
    not survive the outage).

    Holding outcomes past their claims' leases is safe: writes are fenced,
    and after PostgreSQL (re)starts nobody re-claims an expired lease for
    ``RECLAIM_AFTER_RESTART_SECONDS``, while this run writes within a second.
    An outage longer than ``HOLD_SECONDS`` ends the run with the error (the
    task retries it); outcomes still held then are lost and their claims are
    sent again when their leases run out.
    """

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.since = time.monotonic()
        self.next_try = self.since + 1.0
        logger.warning("Database unavailable during a delivery run; waiting for it: %s", error)

    def wait_out(self, run: PausableRun, *, claiming: bool) -> bool:
        """One step of waiting: collect outcomes, try the database once a second.

        Returns False when the run should end (nothing left to hold or claim).
        """
        now = time.monotonic()
        if now - self.since > HOLD_SECONDS:
            logger.error(
                "Database unavailable for %.0f s: %d outcome(s) not recorded; their claims "
                "are retried when their leases run out",
                now - self.since,
                len(run.done),
            )
            raise self.error
        if now < self.next_try:
            run.collect(min(self.next_try - now, 1.0))
            return True
        connection.close_if_unusable_or_obsolete()
        try:
            if run.done or run.released:
                run.flush()
            elif claiming:
                run.claim()
            else:
                connection.ensure_connection()
        except (OperationalError, InterfaceError):
            connection.close()
            self.next_try = time.monotonic() + 1.0
            return True
        logger.warning(
            "Database back after %.1f s: the delivery run goes on", time.monotonic() - self.since
        )
        run.outage = None
        return bool(claiming or run.in_flight() or run.done)
