"""Counters and histograms that live in the process where the event happens.

With ``PROMETHEUS_MULTIPROC_DIR`` set (production: several gunicorn workers
and Celery pool children) prometheus_client keeps each value in a file per
process under that directory and the ``/metrics`` view sums them, so a count
is right whichever process served the request or ran the task. The variable
must be set before this module is imported, in every process that records.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Histogram, disable_created_metrics

# `_created` samples double the output and multiprocess mode drops them anyway.
disable_created_metrics()

UPLOAD_KINDS = ("simple", "tus")
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "error")

UPLOAD_FILES = Counter(
    "doorito_upload_files_received",
    "Files stored, by upload kind (simple request or tus).",
    ["kind"],
)
UPLOAD_BYTES = Counter(
    "doorito_upload_bytes_received",
    "Bytes of files stored, by upload kind (simple request or tus).",
    ["kind"],
)
DELIVERY_ATTEMPTS = Counter(
    "doorito_webhook_delivery_attempts",
    "Webhook requests sent, by the answer's status class (error: no HTTP answer).",
    ["status_class"],
)
TASK_RUNS = Counter(
    "doorito_celery_task_runs",
    "Celery task runs finished, by task name and final state.",
    ["task", "state"],
)
TASK_DURATION = Histogram(
    "doorito_celery_task_duration_seconds",
    "Wall time of Celery task runs, by task name.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)

# Pre-create the label sets so dashboards and `rate()` see zeros, not gaps.
for _kind in UPLOAD_KINDS:
    UPLOAD_FILES.labels(kind=_kind)
    UPLOAD_BYTES.labels(kind=_kind)
for _cls in STATUS_CLASSES:
    DELIVERY_ATTEMPTS.labels(status_class=_cls)


def record_upload_stored(*, kind: str, size: int) -> None:
    """One file stored; called after its transaction committed."""
    UPLOAD_FILES.labels(kind=kind).inc()
    UPLOAD_BYTES.labels(kind=kind).inc(size)


def status_class(status_code: int | None) -> str:
    if status_code is None or not 200 <= status_code < 600:
        return "error"
    return f"{status_code // 100}xx"


def record_delivery_attempts(status_codes: Iterable[int | None]) -> None:
    """A delivery run's sent requests: one increment per status class, not per request."""
    for cls, n in Tally(status_class(code) for code in status_codes).items():
        DELIVERY_ATTEMPTS.labels(status_class=cls).inc(n)


# Task start times by task id; a pool child runs one task at a time, a
# threaded worker several, so key by id rather than keep one slot.
_started: dict[str, float] = {}


def task_started(*, task_id: str) -> None:
    _started[task_id] = time.monotonic()


def task_finished(*, task_id: str, task_name: str, state: Any) -> None:
    started = _started.pop(task_id, None)
    TASK_RUNS.labels(task=task_name, state=str(state or "UNKNOWN")).inc()
    if started is not None:
        TASK_DURATION.labels(task=task_name).observe(time.monotonic() - started)
