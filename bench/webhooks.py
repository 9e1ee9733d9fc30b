"""Webhook delivery benchmark: events/s from commit to a 2xx at a local receiver.

Everything is real and local: PostgreSQL (a throwaway database), the SQL
broker, a Celery worker (``-c 4``, as documented), and a uvicorn receiver in
its own process. Measurements, all in the same run:

1. **bare client** (baseline): one httpx client posting the same kind of signed
   bodies to the same receiver, one after the other;
2. **worker, backlog**: N events committed while no worker runs, then a
   worker started: deliveries/s from the first to the last receipt (the
   worker's delivery rate, measured like the bare client: bodies ready);
3. **worker, burst**: N events committed as fast as one process can
   (transactions of ``--tx-size``) while the worker delivers them through
   the fast path (on-commit task + immediate re-runs); deliveries/s from the
   first commit to the last receipt (the committing process shares the two
   cores), commit→receipt p50/p99 (mostly queueing: events are committed
   faster than any client on this machine could post them), duplicates;
4. **worker, sustained**: N events at ``--sustained-rate`` per second in
   transactions of 10; commit→receipt p50/p99 at a high rate the worker
   keeps up with;
5. **engine alone**: the same runs (20 events per claim) called in a loop in this process
   (no broker, no worker), to separate the engine from the task machinery;
6. **one POST at a time**: the same through a worker limited to one request
   at a time (``-c 1``, ``WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT=1``);
7. **latency under steady load**: ``--paced`` events, one per transaction, at
   ``--rate`` per second; commit→receipt p50/p99;
8. **one event per transaction**: ``--singles`` events, each committed on
   its own as fast as one process can (the shape of web requests that each
   emit one event); deliveries/s and commit→receipt p50/p99.

    python -m uv run python bench/webhooks.py [--events 5000] [--tx-size 100]
    python -m uv run python bench/webhooks.py --backlog-only   # phases 1 and 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._harness import (  # noqa: E402
    free_port,
    receiver_get,
    spawn,
    start_receiver,
    stop,
    worker_command,
)


def setup_django() -> None:
    import dj_database_url

    # Not imported from boot.settings: importing it reads DATABASE_URL before
    # the override below could take effect.
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/doorito")
    name = dj_database_url.parse(url)["NAME"]
    os.environ["DATABASE_URL"] = url.rsplit("/", 1)[0] + f"/{name}_whbench"
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boot.settings")
    os.environ["DJANGO_CONFIGURATION"] = "Test"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import configurations

    configurations.setup()


def stats(port: int) -> dict[str, list[tuple[str, float]]]:
    return receiver_get(port, "/_stats")


def start_worker(log: Path, *, concurrency: int, **extra: str) -> subprocess.Popen:
    from django.conf import settings
    from django.db import connection

    s = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}"
        f"/{s['NAME']}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "LOG_LEVEL": "WARNING",
        # Production's default; the Test configuration closes the connection
        # after every task so test databases can be dropped.
        "DATABASE_CONN_MAX_AGE": "60",
        **extra,
    }
    cmd = [
        *worker_command(concurrency, os.environ.get("BENCH_WORKER_LOGLEVEL", "warning")),
        *os.environ.get("BENCH_WORKER_ARGS", "").split(),
    ]
    proc = spawn(cmd, env, log)
    from common.tasks import ping

    try:
        ping.apply_async().get(timeout=120)
    except BaseException:
        stop(proc)
        raise
    return proc


def bare_client(port: int, n: int) -> float:
    """Baseline: one httpx client, signed bodies, one POST after the other."""
    import httpx

    from common.services.signing import generate_secret, signature_header

    secret = generate_secret()
    url = f"http://127.0.0.1:{port}/bare"
    bodies = [
        json.dumps(
            {"type": "file.stored", "timestamp": "2026-01-01T00:00:00Z", "data": {"i": i}}
        ).encode()
        for i in range(n)
    ]
    with httpx.Client() as client:
        start = time.perf_counter()
        for i, body in enumerate(bodies):
            ts = int(time.time())
            msg_id = f"bare-{i}"
            r = client.post(
                url,
                content=body,
                headers={
                    "content-type": "application/json",
                    "webhook-id": msg_id,
                    "webhook-timestamp": str(ts),
                    "webhook-signature": signature_header(
                        secrets=[secret], msg_id=msg_id, timestamp=ts, body=body
                    ),
                },
            )
            assert r.status_code == 204
        return n / (time.perf_counter() - start)


def emit_batch(path: str, port: int, n: int, tx_size: int, pace: float = 0.0) -> dict[str, float]:
    """Commit ``n`` events for a fresh endpoint at ``path``; returns event id → commit time."""
    from django.db import transaction

    from common.models import WebhookEndpoint
    from common.services.emit import emit_event
    from common.services.webhooks import endpoint_create

    WebhookEndpoint.objects.update(is_active=False)
    endpoint_create(url=f"http://127.0.0.1:{port}{path}")
    committed: dict[str, float] = {}
    i = 0
    next_at = time.perf_counter()
    while i < n:
        ids = []
        with transaction.atomic():
            for _ in range(min(tx_size, n - i)):
                event = emit_event(
                    event_type="file.stored",
                    aggregate_type="file",
                    aggregate_id=f"{path}-{i}",
                    payload={"i": i},
                )
                assert event is not None  # every aggregate id is new
                ids.append(str(event.id))
                i += 1
        now = time.time()
        committed.update(dict.fromkeys(ids, now))
        if pace:
            next_at += pace
            time.sleep(max(0.0, next_at - time.perf_counter()))
    return committed


def count(port: int, path: str) -> int:
    return int(receiver_get(port, f"/_count?path={path}", timeout=10))


def wait_delivered(port: int, path: str, n: int, timeout: float) -> list[tuple[str, float]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count(port, path) >= n:
            time.sleep(1.0)  # let late duplicates show up
            return stats(port).get(path, [])
        time.sleep(0.2)
    got = stats(port).get(path, [])
    raise TimeoutError(f"{path}: {len(got)} of {n} received")


def summarize(committed: dict[str, float], received: list[tuple[str, float]]) -> dict:
    first: dict[str, float] = {}
    for msg_id, at in received:
        first.setdefault(msg_id, at)
    lat = sorted(first[i] - committed[i] for i in committed)
    span = max(first.values()) - min(committed.values())
    return {
        "rate": len(committed) / span,
        "p50": statistics.median(lat),
        "p99": lat[int(len(lat) * 0.99) - 1],
        "duplicates": len(received) - len(first),
        "missing": len(set(committed) - set(first)),
    }


def in_process(committed: dict[str, float], port: int) -> dict:
    """The delivery engine alone: runs of 20 in this process, no broker, no worker."""
    from django.conf import settings

    from common.services.dispatch import process_pending_events

    start = time.time()
    while process_pending_events(batch_size=settings.DELIVERY_BATCH_SIZE).processed:
        pass
    received = wait_delivered(port, "/engine", len(committed), 60)
    result = summarize(committed, received)
    result["rate"] = len(committed) / (max(at for _, at in received) - start)
    return result


def attempt_rows() -> int | None:
    """Attempt history rows written so far (None before that table existed)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('common_webhookdeliveryattempt') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return None
        cursor.execute("SELECT count(*) FROM common_webhookdeliveryattempt")
        return cursor.fetchone()[0]


def backlog_only_report(args, bare: float, b: dict, worker: subprocess.Popen) -> None:
    from common.models import WebhookDelivery

    time.sleep(1.0)  # the last run records its outcomes after the receipt
    print(
        f"events: {args.events} (transactions of {args.tx_size}), one endpoint, "
        f"worker -c {args.worker_concurrency}"
    )
    print(f"bare httpx client, sequential:     {bare:8.0f} requests/s")
    print(
        f"worker, backlog (first->last receipt): {b['rate']:5.0f} deliveries/s   "
        f"ratio {b['rate'] / bare:.2f}x bare   duplicates {b['duplicates']}, "
        f"missing {b['missing']}"
    )
    print(f"attempt history rows: {attempt_rows()}")
    print(
        "deliveries not in state delivered: "
        f"{WebhookDelivery.objects.exclude(status='delivered').count()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--tx-size", type=int, default=100, help="events per transaction")
    parser.add_argument("--paced", type=int, default=1000, help="events in the latency phase")
    parser.add_argument("--rate", type=float, default=100.0, help="events/s in the latency phase")
    parser.add_argument(
        "--sustained-rate", type=float, default=1000.0, help="events/s in the sustained phase"
    )
    parser.add_argument(
        "--singles", type=int, default=2000, help="events in the one-per-transaction phase"
    )
    parser.add_argument("--skip-sequential", action="store_true")
    parser.add_argument("--worker-concurrency", type=int, default=4, help="worker -c (default 4)")
    parser.add_argument(
        "--backlog-only",
        action="store_true",
        help="only the bare client and the worker's backlog (a quick before/after check)",
    )
    args = parser.parse_args()
    if args.events < 1 or args.tx_size < 1 or args.paced < 0 or args.rate <= 0:
        parser.error("--events, --tx-size must be >= 1, --paced >= 0, --rate > 0")
    if args.sustained_rate <= 0 or args.singles < 0:
        parser.error("--sustained-rate must be > 0, --singles >= 0")

    setup_django()
    from django.db import connection

    from common.models import WebhookDelivery

    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    port = free_port()
    receiver = start_receiver(port)
    log = ROOT / ".data" / "bench-webhooks-worker.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text("")
    worker = None
    results: dict[str, dict] = {}
    try:
        bare = bare_client(port, args.events)
        from boot.celery import app

        if not args.backlog_only:
            committed = emit_batch("/engine", port, args.events, args.tx_size)
            app.control.purge()  # no worker yet: this phase is the engine alone
            results["engine"] = in_process(committed, port)

        committed = emit_batch("/backlog", port, args.events, args.tx_size)
        worker = start_worker(log, concurrency=args.worker_concurrency)
        received = wait_delivered(port, "/backlog", args.events, 600)
        results["backlog"] = summarize(committed, received)
        arrivals = sorted(at for _, at in received)
        results["backlog"]["rate"] = len(committed) / (arrivals[-1] - arrivals[0])
        if args.backlog_only:
            backlog_only_report(args, bare, results["backlog"], worker)
            return

        committed = emit_batch("/worker", port, args.events, args.tx_size)
        results["worker"] = summarize(committed, wait_delivered(port, "/worker", args.events, 600))
        committed = emit_batch("/sustained", port, args.events, 10, pace=10 / args.sustained_rate)
        results["sustained"] = summarize(
            committed, wait_delivered(port, "/sustained", args.events, 600)
        )
        if args.paced:
            committed = emit_batch("/paced", port, args.paced, 1, pace=1 / args.rate)
            results["paced"] = summarize(committed, wait_delivered(port, "/paced", args.paced, 300))
        if args.singles:
            committed = emit_batch("/singles", port, args.singles, 1)
            results["singles"] = summarize(
                committed, wait_delivered(port, "/singles", args.singles, 300)
            )
        stop(worker)
        worker = None

        if not args.skip_sequential:
            app.control.purge()  # leftover no-op runs of the phases above
            worker = start_worker(log, concurrency=1, WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT="1")
            committed = emit_batch("/sequential", port, args.events, args.tx_size)
            results["sequential"] = summarize(
                committed, wait_delivered(port, "/sequential", args.events, 1200)
            )
        not_delivered = WebhookDelivery.objects.exclude(status="delivered").count()
    finally:
        if worker is not None:
            stop(worker)
        stop(receiver)
        from boot.celery import app
        from broker import dispose_engines

        app.pool.force_close_all()
        dispose_engines()
        connection.creation.destroy_test_db(old_name, verbosity=0)

    w = results["worker"]
    b = results["backlog"]
    print(
        f"events: {args.events} (transactions of {args.tx_size}), one endpoint, "
        f"worker -c {args.worker_concurrency}"
    )
    print(f"bare httpx client, sequential:     {bare:8.0f} requests/s")
    print(
        f"worker, backlog (first->last receipt): {b['rate']:5.0f} deliveries/s   "
        f"ratio {b['rate'] / bare:.2f}x bare   duplicates {b['duplicates']}, "
        f"missing {b['missing']}"
    )
    print(
        f"worker, burst (first commit->last receipt): {w['rate']:4.0f} deliveries/s   "
        f"ratio {w['rate'] / bare:.2f}x bare   commit->receipt p50 {w['p50'] * 1000:.0f} ms, "
        f"p99 {w['p99'] * 1000:.0f} ms   duplicates {w['duplicates']}, missing {w['missing']}"
    )
    u = results["sustained"]
    print(
        f"worker, sustained ({args.events} events at {args.sustained_rate:g}/s, "
        f"10 per transaction): {u['rate']:4.0f} deliveries/s   "
        f"commit->receipt p50 {u['p50'] * 1000:.0f} ms, p99 {u['p99'] * 1000:.0f} ms   "
        f"duplicates {u['duplicates']}, missing {u['missing']}"
    )
    e = results["engine"]
    print(
        f"engine alone (process_pending_events in-process): {e['rate']:6.0f} deliveries/s   "
        f"ratio {e['rate'] / bare:.2f}x bare   duplicates {e['duplicates']}, "
        f"missing {e['missing']}"
    )
    if "sequential" in results:
        s = results["sequential"]
        print(
            f"one POST at a time (-c 1, 1/ep):   {s['rate']:8.0f} deliveries/s   "
            f"worker / sequential {w['rate'] / s['rate']:.2f}x   "
            f"duplicates {s['duplicates']}, missing {s['missing']}"
        )
    if "paced" in results:
        p = results["paced"]
        print(
            f"steady load ({args.paced} events at {args.rate:g}/s, 1 per transaction): "
            f"commit->receipt p50 {p['p50'] * 1000:.0f} ms, p99 {p['p99'] * 1000:.0f} ms   "
            f"duplicates {p['duplicates']}, missing {p['missing']}"
        )
    if "singles" in results:
        g = results["singles"]
        print(
            f"one event per transaction ({args.singles}, as fast as one process commits): "
            f"{g['rate']:4.0f} deliveries/s   commit->receipt p50 {g['p50'] * 1000:.0f} ms, "
            f"p99 {g['p99'] * 1000:.0f} ms   duplicates {g['duplicates']}, missing {g['missing']}"
        )
    print(f"deliveries not in state delivered at the end: {not_delivered}")


if __name__ == "__main__":
    main()
