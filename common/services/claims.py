"""Claiming due deliveries: a lease per request, never more claims than can start.

A claim marks a ``WebhookDelivery`` ``sending`` with a lease, in one
autocommitted statement (``FOR UPDATE SKIP LOCKED``), before any HTTP: a
concurrent dispatcher never sees a leased row, and a crashed one's rows are
due again when their lease runs out. The lease covers one request
(``WEBHOOK_TIMEOUT_SECONDS`` plus a margin), not a task's life, so a crash
strands its claims for seconds. The dispatcher claims for an endpoint only
as many rows as it has free lanes for (a few lanes' worth more for an
endpoint that has been answering fast), and a claim that waited in its
queue too long to be covered by its lease is given back unsent: a crash can
repeat only the requests that were in flight.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from common.services.sending import Claim, timeout_seconds
from common.services.signing import signing_secrets
from common.services.sql import fetch_all

# From the claim to the recorded outcome, beyond the request itself: waiting
# for a lane (milliseconds), and the outcome's flush (tens of milliseconds;
# seconds on a starved machine).
LEASE_MARGIN_SECONDS = 10
# After PostgreSQL (re)starts, claims whose lease ran out while it was away
# are left this long to their holders: a worker that outlived the outage
# writes its held outcomes within a second or two of the database's return
# (``run_outage.Outage``), and taking them again first sent each
# of those requests twice (~40 of them after a 30 s stop).
RECLAIM_AFTER_RESTART_SECONDS = 5
# That rule as a condition, for every statement that looks for expired
# leases (the claim, the count of due work, the workers' overdue watch).
RECLAIMABLE_SQL = (
    f"now() - pg_postmaster_start_time() >= interval '{RECLAIM_AFTER_RESTART_SECONDS} seconds'"
)
# At most this many rows scanned per claimed event (one row per endpoint).
SCAN_FACTOR = 8


def lease_seconds() -> float:
    """How long a claim is held: one request and the margin around it."""
    return timeout_seconds() + LEASE_MARGIN_SECONDS


# The whole claim in one autocommitted statement: lock due rows (leases that
# ran out first) of endpoints that have a free lane, keep at most ``cap``
# rows per endpoint (its free lanes), ``total`` rows and ``batch`` events,
# lease them, and return what sending needs. ``left`` counts the due rows
# seen but not taken, so the caller knows whether more work waits.
_CLAIM_SQL = f"""
WITH caps AS (
    SELECT * FROM unnest(%(cap_ids)s::uuid[], %(caps)s::integer[]) AS c(endpoint_id, cap)
), scan AS (
    -- Rows to look at: an event has one row per endpoint, so a batch spans
    -- batch * (active endpoints) rows, capped. Locking more than that would
    -- only dirty (and WAL-log) rows this claim leaves alone.
    SELECT %(batch)s * LEAST(GREATEST(count(*), 1), %(factor)s) AS n
    FROM common_webhookendpoint WHERE is_active
), expired AS (
    SELECT id, event_id, endpoint_id, 0 AS pass, lease_expires_at AS due_at
    FROM common_webhookdelivery
    WHERE status = 'sending' AND lease_expires_at <= %(now)s
      AND endpoint_id <> ALL(%(full)s::uuid[])
      AND {RECLAIMABLE_SQL}
    ORDER BY lease_expires_at, id LIMIT (SELECT n FROM scan)
    FOR UPDATE SKIP LOCKED
), pending AS (
    SELECT id, event_id, endpoint_id, 1 AS pass, next_attempt_at AS due_at
    FROM common_webhookdelivery
    WHERE status = 'pending' AND next_attempt_at <= %(now)s
      AND endpoint_id <> ALL(%(full)s::uuid[])
    ORDER BY next_attempt_at, id LIMIT (SELECT n FROM scan)
    FOR UPDATE SKIP LOCKED
), due AS (
    SELECT * FROM expired UNION ALL SELECT * FROM pending
), ranked AS (
    SELECT due.*, COALESCE(caps.cap, %(width)s) AS cap,
           row_number() OVER (PARTITION BY due.endpoint_id ORDER BY pass, due_at, id) AS n
    FROM due LEFT JOIN caps USING (endpoint_id)
), fits AS (
    SELECT * FROM ranked WHERE n <= cap ORDER BY pass, due_at, id LIMIT %(total)s
), chosen AS (
    SELECT event_id FROM fits GROUP BY event_id ORDER BY min(pass), min(due_at) LIMIT %(batch)s
), claimed AS (
    UPDATE common_webhookdelivery d
    SET status = 'sending', lease_expires_at = %(lease)s, attempts = d.attempts + 1,
        last_attempt_at = %(now)s, updated_at = %(now)s
    FROM fits
    WHERE d.id = fits.id AND fits.event_id IN (SELECT event_id FROM chosen)
    RETURNING d.id, d.event_id, d.endpoint_id, d.attempts, d.max_attempts
)
SELECT c.id, c.event_id, c.endpoint_id, c.attempts, c.max_attempts,
       e.event_type, e.created_at, e.payload::text,
       ep.url, ep.secret, ep.previous_secrets::text, ep.is_active,
       ep.failing_since IS NOT NULL AS failing,
       (SELECT count(*) FROM due) - (SELECT count(*) FROM claimed) AS left_rows,
       (SELECT count(*) FROM pending) AS pending_rows,
       (SELECT n FROM scan) AS scan
FROM claimed c
JOIN common_outboxevent e ON e.id = c.event_id
JOIN common_webhookendpoint ep ON ep.id = c.endpoint_id
"""  # noqa: S608 - composed of module constants only


def _body(event_type: str, created_at: dt.datetime, payload_json: str) -> bytes:
    """The envelope around the stored payload text (no decode/encode round trip)."""
    timestamp = created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    head = json.dumps({"type": event_type, "timestamp": timestamp}, separators=(",", ":"))
    return (head[:-1] + ',"data":' + payload_json + "}").encode()


@dataclass
class ClaimBatch:
    claims: list[Claim]
    more_due: bool  # due work was seen beyond what this claim took


def claim_due_deliveries(
    *,
    batch_size: int,
    free_lanes: Mapping[Any, int] | None = None,
    total: int | None = None,
) -> ClaimBatch:
    """Lease due deliveries of at most ``batch_size`` events and commit.

    ``free_lanes`` caps the rows per endpoint (an endpoint not listed gets
    ``WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT``; 0 skips it); ``total`` caps
    all rows. The caller sends every claim at once.
    """
    now = timezone.now()
    free = dict(free_lanes or {})
    width = max(int(settings.WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT), 1)
    params = {
        "now": now,
        "factor": SCAN_FACTOR,
        "batch": batch_size,
        "width": width,
        "total": total if total is not None else batch_size * SCAN_FACTOR * width,
        "cap_ids": [str(k) for k in free],
        "caps": list(free.values()),
        "full": [str(k) for k, v in free.items() if v <= 0],
        "lease": now + dt.timedelta(seconds=lease_seconds()),
    }

    def run() -> list[tuple[Any, ...]]:
        return fetch_all(_CLAIM_SQL, params)

    claimed = _durably(run)
    claimed_at = time.monotonic()
    claims = []
    secrets_by_endpoint: dict[Any, tuple[str, ...]] = {}
    more_due = False
    for (
        delivery_id,
        event_id,
        endpoint_id,
        attempts,
        max_attempts,
        event_type,
        created_at,
        payload_json,
        url,
        secret,
        previous_json,
        is_active,
        failing,
        left_rows,
        pending_rows,
        scan,
    ) in claimed:
        more_due = left_rows > 0 or pending_rows >= scan
        if endpoint_id not in secrets_by_endpoint:
            secrets_by_endpoint[endpoint_id] = tuple(
                signing_secrets(
                    secret=secret, previous_secrets=json.loads(previous_json or "[]"), now=now
                )
            )
        claims.append(
            Claim(
                delivery_id=delivery_id,
                event_id=event_id,
                endpoint_id=endpoint_id,
                url=url,
                secrets=secrets_by_endpoint[endpoint_id],
                body=_body(event_type, created_at, payload_json),
                attempts=attempts,
                max_attempts=max_attempts,
                endpoint_active=is_active,
                endpoint_failing=failing,
                claimed_at=claimed_at,
            )
        )
    return ClaimBatch(claims=claims, more_due=more_due)


def _durably(run: Any) -> Any:
    """Run a statement that must commit on its own (before any HTTP).

    In autocommit mode one statement is its own transaction: no BEGIN and
    COMMIT round trips. Inside an atomic block, ``durable=True`` refuses a
    caller's open transaction (tests' wrapping transaction is allowed).
    """
    if connection.in_atomic_block:
        with transaction.atomic(durable=True):
            return run()
    return run()


_COUNT_DUE_SQL = f"""
SELECT count(DISTINCT event_id) FROM (
    (SELECT event_id FROM common_webhookdelivery
     WHERE status = 'pending' AND next_attempt_at <= %(now)s LIMIT %(limit)s)
    UNION ALL
    (SELECT event_id FROM common_webhookdelivery
     WHERE status = 'sending' AND lease_expires_at <= %(now)s
       AND {RECLAIMABLE_SQL}
     LIMIT %(limit)s)
) due
"""  # noqa: S608 - composed of module constants only

# A run's "remaining" is counted up to this many events. The count ran after
# every run; capped only at 100 000 it walked the whole backlog each time and was
# the costliest statement of a delivery run under load.
REMAINING_COUNT_CAP = 1000


def count_due_events(*, limit: int = REMAINING_COUNT_CAP) -> int:
    """Events with a delivery due now, counted up to ``limit`` (a bigger backlog reads as it)."""
    rows = fetch_all(
        _COUNT_DUE_SQL,
        {"now": timezone.now(), "limit": limit},
    )
    return int(rows[0][0])
