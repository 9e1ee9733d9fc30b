"""Sending claimed deliveries: signed POSTs, concurrent, bounded per endpoint.

No database access here: the caller claimed the rows before and records the
outcomes after. One process-wide httpcore pool (``common.services.http``).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import threading
import time
from collections import defaultdict, deque
from concurrent.futures import wait
from dataclasses import dataclass, field
from typing import Any

import httpcore
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from common.services.http import (
    TIMEOUTS,
    TOTAL_TIMEOUT,
    request_url,
    send_executor,
    webhook_pool,
)
from common.services.signing import signature_header
from common.services.ssrf import UnsafeTargetError

logger = logging.getLogger(__name__)

RESPONSE_EXCERPT_BYTES = 4096
# The attempt history keeps the first response headers, within a budget.
RESPONSE_HEADERS_MAX = 20
RESPONSE_HEADERS_BYTES = 4096
RETRY_AFTER_MIN_SECONDS = 1
RETRY_AFTER_MAX_SECONDS = 24 * 3600
# Concurrency per endpoint within a run ramps up (see send_claims).
START_LANES = 2
RAMP_SECONDS = 0.01
USER_AGENT = b"Doorito-Webhooks/1"
# httpcore's errors share no base class; timeouts are handled before these.
HTTP_ERRORS = (
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ConnectionNotAvailable,
    httpcore.ProxyError,
)


@dataclass(frozen=True)
class Claim:
    delivery_id: Any
    event_id: Any
    endpoint_id: Any
    url: str
    secrets: tuple[str, ...]
    body: bytes
    attempts: int
    max_attempts: int
    endpoint_active: bool


@dataclass
class Outcome:
    ok: bool
    status_code: int | None = None
    duration_ms: int = 0
    error: str = ""
    # The exception's class name when no HTTP answer came (network, timeout,
    # refused target); empty for an HTTP status, however bad.
    error_class: str = ""
    response: str = ""
    response_headers: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    gone: bool = False
    skipped: bool = False


def parse_retry_after(value: str | None, *, now: dt.datetime) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), clamped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(int(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - now).total_seconds()
    return float(min(max(seconds, RETRY_AFTER_MIN_SECONDS), RETRY_AFTER_MAX_SECONDS))


def send_one(claim: Claim) -> Outcome:
    """POST one signed request; never raises (the error is the outcome)."""
    if not claim.endpoint_active:
        return Outcome(ok=False, skipped=True, error="endpoint is disabled")
    msg_id = str(claim.event_id)
    timestamp = int(time.time())
    signature = signature_header(
        secrets=claim.secrets, msg_id=msg_id, timestamp=timestamp, body=claim.body
    )
    headers = [
        (b"user-agent", USER_AGENT),
        (b"content-type", b"application/json"),
        (b"webhook-id", msg_id.encode()),
        (b"webhook-timestamp", str(timestamp).encode()),
        (b"webhook-signature", signature.encode()),
    ]
    started = time.monotonic()
    try:
        with webhook_pool().stream(
            "POST",
            request_url(claim.url),
            headers=headers,
            content=claim.body,
            extensions={"timeout": TIMEOUTS},
        ) as r:
            excerpt = bytearray()
            for chunk in r.iter_stream():
                if len(excerpt) < RESPONSE_EXCERPT_BYTES:
                    excerpt += chunk[: RESPONSE_EXCERPT_BYTES - len(excerpt)]
                if time.monotonic() - started > TOTAL_TIMEOUT:
                    raise httpcore.ReadTimeout("response body not read within 30 s")
                if len(excerpt) >= RESPONSE_EXCERPT_BYTES:
                    break
    except UnsafeTargetError as exc:
        return _failed(exc, str(exc), started)
    except httpcore.TimeoutException as exc:
        return _failed(exc, f"timeout: {exc or type(exc).__name__}", started)
    except HTTP_ERRORS as exc:
        return _failed(exc, f"{type(exc).__name__}: {exc}", started)
    except Exception as exc:  # a bug must not lose the other outcomes of the run
        logger.exception("Unexpected error delivering %s to %s", msg_id, claim.url)
        return _failed(exc, f"{type(exc).__name__}: {exc}", started)
    status = r.status
    outcome = Outcome(
        ok=200 <= status < 300,
        status_code=status,
        duration_ms=_ms(started),
        response=_storable(excerpt.decode("utf-8", errors="replace")),
        response_headers=_capped_headers(r.headers),
        gone=status == 410,
    )
    if not outcome.ok:
        outcome.error = f"HTTP {status}"
        if 300 <= status < 400:
            outcome.error += " (redirects are not followed)"
        if status in (429, 503):
            outcome.retry_after = parse_retry_after(
                _header(r.headers, b"retry-after"), now=timezone.now()
            )
    return outcome


def _failed(exc: BaseException, error: str, started: float) -> Outcome:
    return Outcome(
        ok=False,
        error=_storable(error),
        error_class=type(exc).__name__[:64],
        duration_ms=_ms(started),
    )


def _storable(text: str) -> str:
    """PostgreSQL text cannot hold NUL; one in a receiver's answer must not
    make the bulk write of the whole run fail (decoding already replaced
    invalid UTF-8, so no surrogates remain)."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _capped_headers(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The first response headers, names lowercased, repeats joined with ", ",
    within RESPONSE_HEADERS_MAX / RESPONSE_HEADERS_BYTES."""
    kept: dict[str, str] = {}
    budget = RESPONSE_HEADERS_BYTES
    for key, value in headers[:RESPONSE_HEADERS_MAX]:
        budget -= len(key) + len(value)
        if budget < 0:
            break
        name = _storable(key.decode("latin-1").lower())
        text = _storable(value.decode("latin-1"))
        kept[name] = f"{kept[name]}, {text}" if name in kept else text
    return kept


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


@dataclass
class _SendState:
    outcomes: dict[Any, Outcome] = field(default_factory=dict)
    started: set = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)
    lanes: dict[Any, int] = field(default_factory=lambda: defaultdict(int))  # per endpoint


def _grace_seconds() -> float:
    """Time between the soft and the hard limit that in-flight requests may use."""
    hard = soft = None
    from celery import current_task

    if current_task is not None and current_task.request is not None:
        hard, soft = (current_task.request.timelimit or (None, None))[:2]
    hard = hard or settings.CELERY_TASK_TIME_LIMIT
    soft = soft or settings.CELERY_TASK_SOFT_TIME_LIMIT
    return max(float(hard) - float(soft) - 2.0, 0.5)


def send_claims(claims: list[Claim]) -> tuple[_SendState, bool]:
    """Send concurrently, bounded per endpoint; stop cleanly on the soft time limit.

    Each endpoint starts with ``START_LANES`` threads taking its claims one
    after the other; while it still has claims waiting, its lanes double
    every ``RAMP_SECONDS`` up to ``WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT``.
    A fast receiver is served by two threads (ten threads contending for the
    GIL and the pool's lock cost half again the CPU per request), a slow one
    reaches the full width within a few tens of milliseconds.

    Returns the state (outcomes, which deliveries were started) and whether
    the run was cut short.
    """
    state = _SendState()
    queues: dict[Any, deque[Claim]] = defaultdict(deque)
    for claim in claims:
        queues[claim.endpoint_id].append(claim)
    width = max(int(settings.WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT), 1)
    lanes = state.lanes
    futures: set = set()
    executor = send_executor()

    def run_lane(queue: deque[Claim]) -> None:
        while not state.stop.is_set():
            try:
                claim = queue.popleft()
            except IndexError:
                return
            state.started.add(claim.delivery_id)
            state.outcomes[claim.delivery_id] = send_one(claim)

    def widen(endpoint_id: Any, target: int) -> None:
        queue = queues[endpoint_id]
        # No more lanes than claims still waiting: an idle lane would only exit.
        target = min(target, width, lanes[endpoint_id] + len(queue))
        while lanes[endpoint_id] < target:
            lanes[endpoint_id] += 1
            futures.add(executor.submit(run_lane, queue))

    try:
        for endpoint_id in queues:
            widen(endpoint_id, START_LANES)
        while wait(futures, timeout=RAMP_SECONDS).not_done:
            for endpoint_id, queue in queues.items():
                if queue and lanes[endpoint_id] < width:
                    widen(endpoint_id, 2 * lanes[endpoint_id])
    except SoftTimeLimitExceeded:
        state.stop.set()
        logger.warning(
            "Soft time limit: finishing %d in-flight request(s), releasing the rest",
            len(state.started) - len(state.outcomes),
        )
        wait(futures, timeout=_grace_seconds())
        return state, True
    return state, False
