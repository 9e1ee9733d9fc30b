"""Sending claimed deliveries: signed POSTs, concurrent, bounded per endpoint.

No database access here: the dispatcher (``common.services.dispatch``)
claims rows before and records outcomes after. One process-wide httpcore
pool and thread pool (``common.services.http``). Each endpoint has its own
lanes (threads taking its claims one after the other), so a slow endpoint
occupies only its own lanes; every request ends within
``WEBHOOK_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import queue
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import httpcore
from django.conf import settings
from django.utils import timezone

from common.services.http import (
    request_deadline,
    request_timeouts,
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
# Concurrency per endpoint ramps up (see Lanes).
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
    # The endpoint had a failure clock running when claimed (recording clears it).
    endpoint_failing: bool = False
    # time.monotonic() of the claim: a claim that waited too long is not sent.
    claimed_at: float = 0.0


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


def timeout_seconds() -> float:
    """``WEBHOOK_TIMEOUT_SECONDS``: the longest one request may take, connect to last byte."""
    return max(float(settings.WEBHOOK_TIMEOUT_SECONDS), 0.1)


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
    total = timeout_seconds()
    started = time.monotonic()
    try:
        with (
            request_deadline(total),
            webhook_pool().stream(
                "POST",
                request_url(claim.url),
                headers=headers,
                content=claim.body,
                extensions={"timeout": request_timeouts(total)},
            ) as r,
        ):
            excerpt = bytearray()
            for chunk in r.iter_stream():
                excerpt += chunk[: RESPONSE_EXCERPT_BYTES - len(excerpt)]
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


class Lanes:
    """Sending threads per endpoint, fed claims as the dispatcher makes them.

    An endpoint gets ``START_LANES`` threads; while its claims still wait,
    the dispatcher doubles them every ``RAMP_SECONDS`` (``widen``) up to
    ``WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT``. A fast receiver is served by two
    threads (ten contending for the GIL and the pool's lock cost half again
    the CPU per request), a slow one reaches the full width within a few tens
    of milliseconds. A lane exits when its endpoint has nothing queued. Each
    outcome is put on ``done`` the moment its request returns; a claim that
    waited longer than ``send_by`` seconds (its lease could no longer cover
    the request) is put there unsent, with ``None``, to be given back.
    """

    def __init__(self, *, send_by: float = float("inf")) -> None:
        self.send_by = send_by
        self.width = max(int(settings.WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT), 1)
        self.done: queue.SimpleQueue[tuple[Claim, Outcome | None]] = queue.SimpleQueue()
        self.stop = threading.Event()
        self.started: set[Any] = set()
        self.max_lanes: dict[Any, int] = defaultdict(int)
        self._queues: dict[Any, deque[Claim]] = defaultdict(deque)
        self._lanes: dict[Any, int] = defaultdict(int)
        self._queued_at: dict[Any, float] = {}
        self._lock = threading.Lock()
        self._executor = send_executor()

    def add(self, claims: list[Claim]) -> None:
        with self._lock:
            for claim in claims:
                queued = self._queues[claim.endpoint_id]
                if not queued:
                    self._queued_at[claim.endpoint_id] = time.monotonic()
                queued.append(claim)
            for endpoint_id in {c.endpoint_id for c in claims}:
                self._widen(endpoint_id, START_LANES)

    def widen(self) -> bool:
        """Double the lanes of endpoints whose claims have waited ``RAMP_SECONDS``.

        Returns whether any claim is still queued (call again after ``RAMP_SECONDS``).
        """
        now = time.monotonic()
        waiting = False
        with self._lock:
            for endpoint_id, queued in self._queues.items():
                if not queued:
                    continue
                waiting = True
                if now - self._queued_at.get(endpoint_id, now) >= RAMP_SECONDS:
                    self._widen(endpoint_id, 2 * self._lanes[endpoint_id])
                    self._queued_at[endpoint_id] = now
        return waiting

    def unstarted(self) -> list[Claim]:
        """Take back every queued claim (after ``stop``): they were never sent."""
        with self._lock:
            claims = [c for q in self._queues.values() for c in q]
            for q in self._queues.values():
                q.clear()
        return claims

    def busy(self) -> bool:
        with self._lock:
            return any(self._lanes.values())

    def _widen(self, endpoint_id: Any, target: int) -> None:
        # Never more lanes than claims waiting: an idle lane would only exit.
        queued = len(self._queues[endpoint_id])
        target = min(target, self.width, self._lanes[endpoint_id] + queued)
        while self._lanes[endpoint_id] < target:
            self._lanes[endpoint_id] += 1
            self.max_lanes[endpoint_id] = max(self.max_lanes[endpoint_id], self._lanes[endpoint_id])
            self._executor.submit(self._run_lane, endpoint_id)

    def _run_lane(self, endpoint_id: Any) -> None:
        queued = self._queues[endpoint_id]
        while True:
            with self._lock:
                if self.stop.is_set() or not queued:
                    self._lanes[endpoint_id] -= 1
                    return
                claim = queued.popleft()
                stale = time.monotonic() - claim.claimed_at > self.send_by
                if not stale:
                    self.started.add(claim.delivery_id)
            if stale:
                self.done.put((claim, None))
                continue
            try:
                outcome = send_one(claim)
            except BaseException as exc:  # send_one never raises; a bug must not lose the claim
                outcome = _failed(exc, f"{type(exc).__name__}: {exc}", time.monotonic())
            self.done.put((claim, outcome))
