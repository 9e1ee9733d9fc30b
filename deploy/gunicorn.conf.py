"""gunicorn for production: ``gunicorn -c deploy/gunicorn.conf.py boot.wsgi``.

Why threads (``gthread``) and not the default sync workers: an upload holds
its worker for as long as its client takes to send the body, and a tus
``PATCH`` from a phone on a bad link can take minutes. With 4 sync workers,
four clients sending 2 KB/s took the whole web tier down. A thread waiting
on a socket costs a little memory and no CPU, so each worker runs
``WEB_THREADS`` of them.

Why a worker class of our own (``web/gunicorn_worker.py``): stock gthread
gives a connection a thread at its first byte, so 85 sockets sending their
headers slowly (slowloris) held every thread. Heads, and bodies up to 64
KiB, are read by the worker's event loop; a thread only ever waits on an
upload's body, and an upload waiting on its client holds no database
connection (the pool below; ``common/services/connections.py``). Measured
with 150 slowloris and 150 slow-body sockets open: ``bench/slow_clients.py``.

So no proxy is needed to keep the server sound; a TLS proxy in front
(docs/operations.md, "Web tier") is for TLS.
Every value can be overridden on the command line or with
``GUNICORN_CMD_ARGS``.
"""

from __future__ import annotations

import multiprocessing
import os

bind = os.environ.get("WEB_BIND", "0.0.0.0:8000")
# gthread, with request heads (and small bodies) read by the worker's event
# loop instead of a thread: a slow or silent client costs a selector entry,
# never a thread (web/gunicorn_worker.py; WEB_HEADER_TIMEOUT).
worker_class = "web.gunicorn_worker.HeadFirstWorker"
# Up to 8 by default: past that the database pools get too small to share
# WEB_DB_CONNECTION_BUDGET (below); set it and max_connections for more.
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, min(8, multiprocessing.cpu_count()))))
# Threads are for requests whose body streams through them (uploads); one
# waiting on a slow client costs memory, no CPU and no database connection.
threads = int(os.environ.get("WEB_THREADS", 128))
# Sockets a worker holds, reading heads included. It also stops accepting
# while all its threads are busy (web/gunicorn_worker.py), so new requests
# go to a worker that can answer them now.
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", 1000))
# The threads of a worker share a pool of DATABASE_POOL_SIZE connections,
# and each worker also holds one for upload locks and up to two for the
# broker (BROKER_POOL_SIZE x 2). By default the web tier's connections,
# WEB_CONCURRENCY x (DATABASE_POOL_SIZE + 3), stay inside
# WEB_DB_CONNECTION_BUDGET whatever WEB_THREADS is; with a worker (-c 4),
# beat and PostgreSQL's reserve that is at most 71 of the default
# max_connections = 100 (docs/operations.md, "Sizing database connections";
# tests/test_connection_budget.py).
WEB_DB_CONNECTION_BUDGET = int(os.environ.get("WEB_DB_CONNECTION_BUDGET", 48))
PER_WORKER_CONNECTIONS = 1 + 2 * int(os.environ.get("BROKER_POOL_SIZE", 1))
database_pool_size = int(
    os.environ.get(
        "DATABASE_POOL_SIZE",
        max(2, WEB_DB_CONNECTION_BUDGET // workers - PER_WORKER_CONNECTIONS),
    )
)
os.environ["DATABASE_POOL_SIZE"] = str(database_pool_size)
# Keep-alive: a kept-alive connection waits in the event loop, not on a
# thread, so it costs nothing but a socket; clients that send many requests
# (tus PATCHes, the portal's pages) skip a TCP handshake each.
keepalive = int(os.environ.get("WEB_KEEPALIVE", 5))
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
