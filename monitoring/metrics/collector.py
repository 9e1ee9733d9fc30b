"""Gauges computed from the database when ``/metrics`` is scraped.

They describe shared state (the outbox, the files, beat, the broker), so they
are read at scrape time rather than kept by a process: any web worker gives
the same answer, and nothing goes stale when the process that changed the
state dies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from common.selectors import delivery_health
from monitoring.metrics import selectors

logger = logging.getLogger(__name__)

# Summing a few thousand delta rows takes a millisecond or two; folding them
# then keeps the next scrape as cheap whatever the upload rate.
FOLD_FILE_TOTALS_OVER = 1000


class DatabaseCollector(Collector):
    """Yields the database gauges; a failed read leaves out its gauges, not the scrape."""

    def collect(self) -> Iterator[Metric]:
        ok = True
        parts = (
            self._outbox,
            self._deliveries,
            self._files,
            self._scanner,
            self._beat,
            self._broker,
        )
        for part in parts:
            try:
                # Read fully first, so a failure never leaves half a group out.
                yield from list(part())
            except Exception:
                ok = False
                logger.exception("metrics: %s failed", part.__name__)
        yield GaugeMetricFamily(
            "doorito_metrics_database_ok",
            "1 when every database gauge of this scrape was read, else 0.",
            value=1.0 if ok else 0.0,
        )

    def _outbox(self) -> Iterator[Metric]:
        health = delivery_health()
        yield GaugeMetricFamily(
            "doorito_outbox_pending_deliveries",
            "Pending webhook deliveries (due or waiting for a retry), counted up to 10000.",
            value=health.pending,
        )
        yield GaugeMetricFamily(
            "doorito_outbox_oldest_due_age_seconds",
            "How long the oldest due pending delivery has been due (0 when none is).",
            value=health.oldest_due_age_seconds or 0.0,
        )
        endpoints = GaugeMetricFamily(
            "doorito_webhook_endpoints",
            "Endpoints that are active but failing, and endpoints disabled.",
            labels=["state"],
        )
        endpoints.add_metric(["failing"], health.failing_endpoints)
        endpoints.add_metric(["disabled"], health.disabled_endpoints)
        yield endpoints

    def _deliveries(self) -> Iterator[Metric]:
        counts = selectors.delivery_counts()
        by_status = GaugeMetricFamily(
            "doorito_webhook_deliveries",
            "Deliveries by status (pending, sending, failed), each counted up to 10000.",
            labels=["status"],
        )
        by_status.add_metric(["pending"], counts.pending)
        by_status.add_metric(["sending"], counts.sending)
        by_status.add_metric(["failed"], counts.failed)
        yield by_status
        yield GaugeMetricFamily(
            "doorito_webhook_deliveries_estimated",
            "All delivery rows, as estimated by the planner (pg_class.reltuples).",
            value=counts.estimated_rows,
        )

    def _files(self) -> Iterator[Metric]:
        totals = selectors.file_totals()
        if totals.foldable_rows > FOLD_FILE_TOTALS_OVER:
            from portal.services.file_totals import file_totals_fold

            file_totals_fold()
        files = GaugeMetricFamily("doorito_files", "Files by status.", labels=["status"])
        for status, n in sorted(totals.by_status.items()):
            files.add_metric([status], n)
        yield files
        yield GaugeMetricFamily(
            "doorito_files_stored_bytes", "Bytes of the stored files.", value=totals.stored_bytes
        )

    def _scanner(self) -> Iterator[Metric]:
        from portal.selectors import held_files
        from portal.services.clamd import clamd_ping, scanning_enabled

        if scanning_enabled():
            yield GaugeMetricFamily(
                "doorito_scanner_up",
                "1 when clamd (CLAMD_URL) answers PING, else 0; absent without a scanner.",
                value=1.0 if clamd_ping(timeout=1.0) is None else 0.0,
            )
        held = held_files()
        yield GaugeMetricFamily(
            "doorito_files_held",
            "Files waiting in 'scanning' for the virus scan or the pre-store hook.",
            value=held.count,
        )
        yield GaugeMetricFamily(
            "doorito_files_held_oldest_age_seconds",
            "How long the longest-waiting 'scanning' file has waited (0 when none).",
            value=held.oldest_age_seconds,
        )

    def _beat(self) -> Iterator[Metric]:
        last_runs = GaugeMetricFamily(
            "doorito_beat_last_run_timestamp_seconds",
            "Unix time of each enabled beat entry's last run (no sample before its first).",
            labels=["entry"],
        )
        for entry, last_run in sorted(selectors.beat_last_runs().items()):
            if last_run is not None:
                last_runs.add_metric([entry], last_run.timestamp())
        yield last_runs

    def _broker(self) -> Iterator[Metric]:
        depths = selectors.broker_queue_depths()
        queue = GaugeMetricFamily(
            "doorito_broker_queue_messages",
            "Messages waiting in each broker queue, counted up to 10000 "
            "(only when the broker is the database).",
            labels=["queue"],
        )
        for name, n in sorted((depths or {}).items()):
            queue.add_metric([name], n)
        yield queue
