"""The ``/metrics`` body: process counters plus the database gauges.

With ``PROMETHEUS_MULTIPROC_DIR`` set the counters come from every process's
files in that directory (``MultiProcessCollector``), not from this process's
memory, which would show only the requests this worker happened to serve.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

import monitoring.metrics.instruments  # noqa: F401 - defines the counters in this process
from monitoring.metrics.collector import DatabaseCollector


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def metrics_render() -> bytes:
    """Prometheus text format for one scrape (the database is read now)."""
    registry = CollectorRegistry(auto_describe=False)
    path = multiprocess_dir()
    if path:
        MultiProcessCollector(registry, path=path)
    else:
        registry.register(REGISTRY)
    registry.register(DatabaseCollector())
    return generate_latest(registry)
