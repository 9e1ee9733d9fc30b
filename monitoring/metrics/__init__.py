"""Prometheus metrics: counters kept by processes, gauges read from the database.

``instruments`` holds the counters each process increments where the event
happens; ``collector`` reads the database when ``/metrics`` is scraped, so its
gauges are right whichever web process answers; ``exposition`` assembles the
two (with prometheus_client's multiprocess mode when
``PROMETHEUS_MULTIPROC_DIR`` is set). docs/operations.md, "Metrics".
"""
