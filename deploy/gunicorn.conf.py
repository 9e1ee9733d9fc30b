"""gunicorn for production: ``gunicorn -c deploy/gunicorn.conf.py boot.wsgi``.

Why threads (``gthread``) and not the default sync workers: an upload holds
its worker for as long as its client takes to send the body, and a tus
``PATCH`` from a phone on a bad link can take minutes. With 4 sync workers,
four clients sending 2 KB/s took the whole web tier down (``/healthz`` timed
out at 15 s, 20 other uploaders stalled). A thread waiting on a socket costs
a little memory and no CPU, so each worker runs ``WEB_THREADS`` of them and
slow bodies use up threads, not the server (``bench/slow_clients.py``: 50
clients at 2 KB/s beside 20 normal uploaders).

A TLS proxy in front (docs/operations.md, "Web tier") can take slow
simple-upload bodies off the application by buffering them; this file keeps
gunicorn sound without one.
Every value can be overridden on the command line or with
``GUNICORN_CMD_ARGS``.
"""

from __future__ import annotations

import multiprocessing
import os

bind = os.environ.get("WEB_BIND", "0.0.0.0:8000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, multiprocessing.cpu_count())))
# Every thread that serves a request keeps a database connection open for
# DATABASE_CONN_MAX_AGE (a tus PATCH holds one for its whole body), so the
# web tier's connections are workers x threads. By default they share
# WEB_DB_CONNECTION_BUDGET between the workers (at least 8 threads each):
# with a Celery worker, beat and the superuser reserve that stays inside
# PostgreSQL's default max_connections = 100 for up to ten web workers
# (docs/operations.md, "Sizing database connections").
WEB_DB_CONNECTION_BUDGET = 80
threads = int(os.environ.get("WEB_THREADS", max(8, WEB_DB_CONNECTION_BUDGET // workers)))
# A worker takes no more connections than it has threads: one whose threads
# are all busy stops accepting, so new requests (health probes included) go
# to a worker that can answer now instead of queueing behind slow bodies.
worker_connections = threads
# Idle keep-alive connections would count against that limit; uploads are
# large and a proxy in front opens its own connections, so close after each
# response.
keepalive = 0
# The arbiter's liveness check on each worker; gthread workers report in
# from their main loop, so long requests do not trip it.
timeout = 60
graceful_timeout = 30
# Header limits stay gunicorn's (docs/tus.md: Upload-Metadata fits 8190 bytes).

# A body read that receives nothing for this long fails (the client is
# gone or stalled), freeing the thread. A slow client that keeps sending is
# never cut off: uploads over bad links are the point of tus.
body_read_timeout = int(os.environ.get("WEB_BODY_READ_TIMEOUT", "60"))

accesslog = os.environ.get("WEB_ACCESS_LOG") or None


def pre_request(worker, req):
    sock = getattr(getattr(req, "unreader", None), "sock", None)
    if sock is not None and body_read_timeout > 0:
        sock.settimeout(body_read_timeout)


def child_exit(server, worker):
    """A worker is gone: drop its live-gauge files from the metrics directory.

    Its counters stay counted (prometheus_client keeps dead processes' counter
    files), so totals never go down when gunicorn recycles a worker.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
