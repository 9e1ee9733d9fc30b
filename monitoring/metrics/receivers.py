"""Where the counters in ``instruments`` hear about what happened.

Connected once from ``MonitoringConfig.ready()``. Celery's task signals fire
in worker processes only (the web process runs no tasks, except eagerly in
Dev, where counting them is harmless).
"""

from __future__ import annotations

import os
from typing import Any

from celery import signals as celery_signals

from common.signals import delivery_attempts_recorded
from monitoring.metrics import instruments
from portal.signals import file_stored


def _file_stored(*, kind: str, size: int, **kwargs: Any) -> None:
    instruments.record_upload_stored(kind=kind, size=size)


def _delivery_attempts(*, status_codes: list[int | None], **kwargs: Any) -> None:
    instruments.record_delivery_attempts(status_codes)


def _task_started(task_id: str | None = None, **kwargs: Any) -> None:
    if task_id:
        instruments.task_started(task_id=task_id)


def _task_finished(
    task_id: str | None = None, task: Any = None, state: Any = None, **kwargs: Any
) -> None:
    """Count every run and its wall time by task (docs/operations.md, "Metrics")."""
    if task_id and task is not None:
        instruments.task_finished(task_id=task_id, task_name=task.name, state=state)


def _process_dead(pid: int | None = None, **kwargs: Any) -> None:
    """A pool child is gone: drop its live-gauge files (its counters stay counted)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


def connect() -> None:
    file_stored.connect(_file_stored, dispatch_uid="monitoring.file_stored")
    delivery_attempts_recorded.connect(_delivery_attempts, dispatch_uid="monitoring.deliveries")
    celery_signals.task_prerun.connect(_task_started, weak=False, dispatch_uid="monitoring.started")
    celery_signals.task_postrun.connect(
        _task_finished, weak=False, dispatch_uid="monitoring.finished"
    )
    celery_signals.worker_process_shutdown.connect(
        _process_dead, weak=False, dispatch_uid="monitoring.process_dead"
    )
