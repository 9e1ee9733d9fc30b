"""Webhook delivery in three phases (STYLE §3, SPEC §4).

1. **Claim** due ``WebhookDelivery`` rows with ``FOR UPDATE SKIP LOCKED`` and
   mark them ``sending`` with a lease, in a short transaction that commits
   before any HTTP. A concurrent dispatcher never sees a leased row; a crashed
   one's rows become claimable again when the lease runs out.
2. **Send** (``common.services.sending``) with no transaction open: one
   process-wide httpx client, several
   requests at once, at most ``WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT`` per
   endpoint.
3. **Record** every outcome in one short transaction (bulk UPDATE), then the
   per-event summary. Each (event, endpoint) pair has its own state, so a
   failing endpoint never makes a succeeding one receive an event again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from common.metrics.instruments import record_delivery_attempts
from common.models import WebhookDelivery, WebhookEndpoint
from common.services.event_state import disable_endpoint, lock_events, summarize_events
from common.services.http import background_executor
from common.services.sending import Claim, Outcome, send_claims
from common.services.signing import signing_secrets
from common.services.sql import fetch_all

logger = logging.getLogger(__name__)

JITTER = 0.2
# At most this many rows scanned per claimed event (one row per endpoint).
SCAN_FACTOR = 8

D = WebhookDelivery.Status


@dataclass
class DeliveryRunResult:
    processed: int = 0
    delivered: int = 0
    failed: int = 0
    remaining: int = 0
    stopped_early: bool = False
    event_statuses: dict[Any, str] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, int]:
        return {
            "processed": self.processed,
            "delivered": self.delivered,
            "failed": self.failed,
            "remaining": self.remaining,
        }


def retry_delay_seconds(attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones (with jitter)."""
    schedule = [float(s) for s in settings.WEBHOOK_RETRY_SCHEDULE] or [60.0]
    base = schedule[min(max(attempts, 1), len(schedule)) - 1]
    return base * random.uniform(1 - JITTER, 1 + JITTER)


def _lease_seconds() -> int:
    # Longer than a task may live, so a live dispatcher never loses its claim.
    return int(settings.CELERY_TASK_TIME_LIMIT) + 60


# The whole claim in one autocommitted statement: lock due rows (leases that
# ran out first), keep those of the first ``batch`` events, lease them, and
# return what sending needs. ``due_events`` counts the events seen due, so the
# caller knows whether more work waits without another query.
_CLAIM_SQL = """
WITH scan AS (
    -- Rows to look at: an event has one row per endpoint, so a batch spans
    -- batch * (active endpoints) rows, capped. Locking more than that would
    -- only dirty (and WAL-log) rows this run leaves alone.
    SELECT %(batch)s * LEAST(GREATEST(count(*), 1), %(factor)s) AS n
    FROM common_webhookendpoint WHERE is_active
), expired AS (
    SELECT id, event_id, 0 AS pass, lease_expires_at AS due_at
    FROM common_webhookdelivery
    WHERE status = 'sending' AND lease_expires_at <= %(now)s
    ORDER BY lease_expires_at, id LIMIT (SELECT n FROM scan)
    FOR UPDATE SKIP LOCKED
), pending AS (
    SELECT id, event_id, 1 AS pass, next_attempt_at AS due_at
    FROM common_webhookdelivery
    WHERE status = 'pending' AND next_attempt_at <= %(now)s
    ORDER BY next_attempt_at, id LIMIT (SELECT n FROM scan)
    FOR UPDATE SKIP LOCKED
), due AS (
    SELECT * FROM expired UNION ALL SELECT * FROM pending
), chosen AS (
    SELECT event_id FROM due GROUP BY event_id ORDER BY min(pass), min(due_at) LIMIT %(batch)s
), claimed AS (
    UPDATE common_webhookdelivery d
    SET status = 'sending', lease_expires_at = %(lease)s, attempts = d.attempts + 1,
        last_attempt_at = %(now)s, updated_at = %(now)s
    FROM due
    WHERE d.id = due.id AND due.event_id IN (SELECT event_id FROM chosen)
    RETURNING d.id, d.event_id, d.endpoint_id, d.attempts, d.max_attempts
)
SELECT c.id, c.event_id, c.endpoint_id, c.attempts, c.max_attempts,
       e.event_type, e.created_at, e.payload::text,
       ep.url, ep.secret, ep.previous_secrets::text, ep.is_active,
       (SELECT count(DISTINCT event_id) FROM due) AS due_events,
       (SELECT count(*) FROM pending) AS pending_rows,
       (SELECT n FROM scan) AS scan
FROM claimed c
JOIN common_outboxevent e ON e.id = c.event_id
JOIN common_webhookendpoint ep ON ep.id = c.endpoint_id
"""


def _body(event_type: str, created_at: dt.datetime, payload_json: str) -> bytes:
    """The envelope around the stored payload text (no decode/encode round trip)."""
    timestamp = created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    head = json.dumps({"type": event_type, "timestamp": timestamp}, separators=(",", ":"))
    return (head[:-1] + ',"data":' + payload_json + "}").encode()


@dataclass
class ClaimBatch:
    claims: list[Claim]
    more_due: bool  # due work was seen beyond what this batch took


def _durably(run):
    """Run a statement that must commit on its own (before any HTTP).

    In autocommit mode one statement is its own transaction: no BEGIN and
    COMMIT round trips. Inside an atomic block, ``durable=True`` refuses a
    caller's open transaction (tests' wrapping transaction is allowed).
    """
    if connection.in_atomic_block:
        with transaction.atomic(durable=True):
            return run()
    return run()


def claim_due_deliveries(*, batch_size: int) -> ClaimBatch:
    """Lease the due deliveries of at most ``batch_size`` events and commit."""
    now = timezone.now()
    params = {
        "now": now,
        "factor": SCAN_FACTOR,
        "batch": batch_size,
        "lease": now + dt.timedelta(seconds=_lease_seconds()),
    }

    def run() -> list[tuple]:
        return fetch_all(_CLAIM_SQL, params)

    claimed = _durably(run)
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
        due_events,
        pending_rows,
        scan,
    ) in claimed:
        more_due = due_events > batch_size or pending_rows >= scan
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
            )
        )
    return ClaimBatch(claims=claims, more_due=more_due)


def _apply(d: WebhookDelivery, claim: Claim, outcome: Outcome, now: dt.datetime) -> None:
    d.last_attempt_at = now
    d.last_status_code = outcome.status_code
    d.last_duration_ms = outcome.duration_ms
    d.last_error = outcome.error[:2000]
    d.last_response = outcome.response
    d.lease_expires_at = None
    if outcome.ok:
        d.status, d.delivered_at, d.next_attempt_at = D.DELIVERED, now, None
    elif outcome.gone or outcome.skipped or claim.attempts >= claim.max_attempts:
        d.status, d.next_attempt_at = D.FAILED, None
    else:
        delay = outcome.retry_after or retry_delay_seconds(claim.attempts)
        d.status, d.next_attempt_at = D.PENDING, now + dt.timedelta(seconds=delay)


def record_outcomes(
    *,
    claims: list[Claim],
    outcomes: dict[Any, Outcome],
    started: set,
    now: dt.datetime | None = None,
    request_retry_at: Callable[[dt.datetime], None] | None = None,
) -> dict[Any, str]:
    """Write every outcome, release unstarted claims, update endpoints and events.

    Claims that were started but have no outcome (still in flight after the
    grace period) keep their lease: they are retried once it runs out.
    ``request_retry_at`` (the task passes one) is called after the commit
    with the earliest retry this run scheduled, so the retry runs on time
    rather than at the next sweep.
    """
    now = now or timezone.now()
    by_id = {c.delivery_id: c for c in claims}
    updates: list[WebhookDelivery] = []
    written: list[tuple[WebhookDelivery, Claim, Outcome]] = []
    ok_endpoints: set = set()
    failing_endpoints: set = set()
    gone_endpoints: set = set()
    for delivery_id, outcome in outcomes.items():
        claim = by_id[delivery_id]
        d = WebhookDelivery(id=delivery_id, attempts=claim.attempts)
        _apply(d, claim, outcome, now)
        updates.append(d)
        written.append((d, claim, outcome))
        if outcome.skipped:
            continue
        if outcome.ok:
            ok_endpoints.add(claim.endpoint_id)
        else:
            failing_endpoints.add(claim.endpoint_id)
        if outcome.gone:
            gone_endpoints.add(claim.endpoint_id)
    unsent = [c for c in claims if c.delivery_id not in started]
    for claim in unsent:
        updates.append(WebhookDelivery(id=claim.delivery_id))
    event_ids = sorted({by_id[u.id].event_id for u in updates}, key=str)
    with transaction.atomic(durable=True):
        lock_events(event_ids)
        _write_outcomes(written, now)
        released = [u.id for u in updates if u.id not in outcomes]
        if released:
            fetch_all(_RELEASE_SQL, [now, now, released])
        _update_endpoint_health(ok=ok_endpoints, failing=failing_endpoints - ok_endpoints, now=now)
        statuses = summarize_events(event_ids, now)
    # After the commit, once per run and status class: a rolled-back record
    # (the soft limit fired) is written again and must not count twice.
    record_delivery_attempts(o.status_code for _, _, o in written if not o.skipped)
    retries = [d.next_attempt_at for d, _, _ in written if d.status == D.PENDING]
    if retries and request_retry_at is not None:
        earliest = min(retries)
        _safe_call(lambda: request_retry_at(earliest))
    disable = {ep: "responded 410 Gone" for ep in gone_endpoints}
    disable.update(_endpoints_failing_too_long(failing_endpoints - ok_endpoints, now))
    for endpoint_id, reason in disable.items():
        disable_endpoint(endpoint_id=endpoint_id, reason=reason)
    return statuses


# Every outcome of a run in one statement: the deliveries' new state (UPDATE)
# and, for the claims that were sent, one attempt history row each (INSERT in
# a data-modifying CTE, ids from common_uuid7()). One round trip: under CPU
# contention each extra statement costs a scheduling wait, not just its work.
_WRITE_OUTCOMES_SQL = """
WITH v AS (
    SELECT * FROM unnest(
        %(ids)s::uuid[], %(status)s::varchar[], %(next)s::timestamptz[],
        %(delivered)s::timestamptz[], %(code)s::integer[], %(duration)s::integer[],
        %(error)s::text[], %(response)s::text[], %(sent)s::boolean[], %(number)s::integer[],
        %(error_class)s::text[], %(headers)s::text[]
    ) AS v(id, status, next_attempt_at, delivered_at, status_code, duration_ms, error,
           response, sent, attempt_number, error_class, response_headers)
), history AS (
    INSERT INTO common_webhookdeliveryattempt (
        id, created_at, updated_at, delivery_id, attempt_number, status_code, duration_ms,
        error_class, error, response_headers, response_excerpt
    )
    SELECT common_uuid7(), %(now)s, %(now)s, v.id, v.attempt_number, v.status_code,
           v.duration_ms, v.error_class, v.error, v.response_headers::jsonb, v.response
    FROM v WHERE v.sent
)
UPDATE common_webhookdelivery d SET
    status = v.status, next_attempt_at = v.next_attempt_at, delivered_at = v.delivered_at,
    last_attempt_at = %(now)s, last_status_code = v.status_code,
    last_duration_ms = v.duration_ms, last_error = v.error,
    last_response = v.response, lease_expires_at = NULL, updated_at = %(now)s
FROM v
WHERE d.id = v.id
"""
# A claim that was never sent gives its attempt back and is due again at once.
_RELEASE_SQL = """
UPDATE common_webhookdelivery
SET status = 'pending', attempts = attempts - 1, next_attempt_at = %s,
    lease_expires_at = NULL, updated_at = %s
WHERE id = ANY(%s) AND status = 'sending'
"""


def _write_outcomes(
    written: list[tuple[WebhookDelivery, Claim, Outcome]], now: dt.datetime
) -> None:
    """All outcomes of a run, and their attempt history, in one statement.

    One UPDATE per row cost a fifth of the time. The history rows are written
    in the same statement, so the history never shows an attempt the delivery
    does not count (nor misses one it does); a skipped claim (its endpoint
    disabled) made no request and is not an attempt.
    """
    if not written:
        return
    fetch_all(
        _WRITE_OUTCOMES_SQL,
        {
            "now": now,
            "ids": [d.id for d, _, _ in written],
            "status": [d.status for d, _, _ in written],
            "next": [d.next_attempt_at for d, _, _ in written],
            "delivered": [d.delivered_at for d, _, _ in written],
            "code": [d.last_status_code for d, _, _ in written],
            "duration": [d.last_duration_ms for d, _, _ in written],
            "error": [d.last_error for d, _, _ in written],
            "response": [d.last_response for d, _, _ in written],
            "sent": [not o.skipped for _, _, o in written],
            "number": [c.attempts for _, c, _ in written],
            "error_class": [o.error_class for _, _, o in written],
            "headers": [json.dumps(o.response_headers) for _, _, o in written],
        },
    )


def _update_endpoint_health(*, ok: set, failing: set, now: dt.datetime) -> None:
    if ok:
        fetch_all(
            "UPDATE common_webhookendpoint SET failing_since = NULL, updated_at = %s "
            "WHERE id = ANY(%s) AND failing_since IS NOT NULL",
            [now, list(ok)],
        )
    if failing:
        fetch_all(
            "UPDATE common_webhookendpoint SET failing_since = %s, updated_at = %s "
            "WHERE id = ANY(%s) AND failing_since IS NULL",
            [now, now, list(failing)],
        )


def _endpoints_failing_too_long(endpoint_ids: set, now: dt.datetime) -> dict[Any, str]:
    if not endpoint_ids:
        return {}
    days = settings.WEBHOOK_DISABLE_AFTER_FAILING_DAYS
    cutoff = now - dt.timedelta(days=days)
    ids = WebhookEndpoint.objects.filter(
        id__in=endpoint_ids, is_active=True, failing_since__lte=cutoff
    ).values_list("id", flat=True)
    return {ep: f"failing continuously for {days} days" for ep in ids}


_COUNT_DUE_SQL = """
SELECT count(DISTINCT event_id) FROM (
    (SELECT event_id FROM common_webhookdelivery
     WHERE status = 'pending' AND next_attempt_at <= %(now)s LIMIT %(limit)s)
    UNION ALL
    (SELECT event_id FROM common_webhookdelivery
     WHERE status = 'sending' AND lease_expires_at <= %(now)s LIMIT %(limit)s)
) due
"""


# A run's "remaining" is counted up to this many events. The count ran after
# every run; capped only at 100 000 it walked the whole backlog each time and was
# the costliest statement of a delivery run under load.
REMAINING_COUNT_CAP = 1000


def count_due_events(*, limit: int = REMAINING_COUNT_CAP) -> int:
    """Events with a delivery due now, counted up to ``limit`` (a bigger backlog reads as it)."""
    return fetch_all(_COUNT_DUE_SQL, {"now": timezone.now(), "limit": limit})[0][0]


def _safe_call(func) -> None:
    try:
        func()
    except Exception:
        logger.exception("Queueing the next delivery run failed; the sweep will pick it up")


def run_delivery_batch(
    *, batch_size: int, request_followup=None, request_retry_at=None
) -> DeliveryRunResult:
    """One dispatcher run: claim, send, record. See the module docstring.

    ``request_followup`` (the task passes one) queues the next run as soon as
    the claim shows more due work, so the next run claims while this one is
    still sending; it is called at most once per run, and again at the end
    only if the run released work or the backlog appeared meanwhile.
    ``request_retry_at`` queues a run for the earliest retry the run scheduled.
    """
    result = DeliveryRunResult()
    batch = claim_due_deliveries(batch_size=batch_size)
    claims = batch.claims
    followup_requested = False
    if batch.more_due and request_followup is not None:
        # Publishing to the SQL broker takes tens of ms from a worker child:
        # do it beside the HTTP sends. Only a shortcut, the sweep backs it up.
        background_executor().submit(_safe_call, request_followup)
        followup_requested = True
    if claims:
        state, stopped = send_claims(claims)
        # Lanes still in flight after a soft-limit grace period may add to
        # these; what is recorded and counted is this snapshot.
        outcomes, started = dict(state.outcomes), set(state.started)
        try:
            statuses = record_outcomes(
                claims=claims,
                outcomes=outcomes,
                started=started,
                request_retry_at=request_retry_at,
            )
        except SoftTimeLimitExceeded:
            # The limit fired while recording (rolled back): record once more.
            statuses = record_outcomes(
                claims=claims,
                outcomes=outcomes,
                started=started,
                request_retry_at=request_retry_at,
            )
            stopped = True
        attempted = {c.event_id for c in claims if c.delivery_id in outcomes}
        result.processed = len(attempted)
        result.delivered = sum(1 for e in attempted if statuses.get(e) == "delivered")
        result.failed = sum(1 for e in attempted if statuses.get(e) == "failed")
        result.stopped_early = stopped
        result.event_statuses = statuses
    result.remaining = count_due_events()
    if (
        request_followup is not None
        and result.remaining
        and result.processed
        and not followup_requested
    ):
        request_followup()
    return result
