"""``/metrics`` scrape time with a lot of data, against ``/healthz`` in the same run.

Starts the real web server (gunicorn, one sync worker, ``Production``
settings, ``METRICS_TOKEN`` set) on 127.0.0.1 against a throwaway database
holding ``--deliveries`` webhook deliveries (1 000 000: events each
delivered to two endpoints; a few pending, sending and failed among the
delivered ones) and ``--files`` files (100 000, stored, uploading and
failed), plus a backlog of broker messages. It then times ``--requests``
(200) sequential scrapes of ``/metrics`` with the bearer token on one
keep-alive connection, and as many GETs of ``/healthz`` (no database): the
baseline that shows what the machine and the HTTP round trip cost alone.

    cd bench && ../.venv/bin/python metrics.py [--requests 200] [--keep] [--explain]

Prints p50/p95 in milliseconds and the p95 ratio against ``/healthz``; with
``--explain``, also the time of each gauge's read on the seeded data. The
target (issue #13) is p95 <= 50 ms per scrape here.

Needs PostgreSQL at ``BENCH_DATABASE_URL`` (default: ``doorito_metricsbench``
on 127.0.0.1), which it creates, seeds and, unless ``--keep``, drops again.
With ``--keep`` a later run finds the rows there and skips the seeding.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
from gunicorn_server import GunicornServer, manage, production_env

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/doorito_metricsbench"
TOKEN = "metrics-bench-token-" + "x" * 24
BENCH_EMAIL = "metrics-bench@example.com"

# INSERT … SELECT generate_series: a million deliveries through the services
# would take longer than the benchmark. The shares are those of a busy
# installation at rest: nearly everything delivered, a small live backlog.
SEED = """
import json
from django.db import connection, transaction
from accounts.models import User
from common.models import WebhookDelivery, WebhookEndpoint

if WebhookDelivery.objects.count() >= {deliveries}:
    print(json.dumps({{"seeded": False}}))
    raise SystemExit(0)

user = User.objects.create_user({email!r}, "bench-password-123")
endpoints = [
    WebhookEndpoint.objects.create(
        url=f"http://127.0.0.1:9/metrics-bench/{{i}}", secret="whsec_" + "A" * 43
    )
    for i in range(2)
]
with transaction.atomic(), connection.cursor() as cur:
    cur.execute('''
        INSERT INTO portal_uploadfile (id, created_at, updated_at, owner_id, batch_id,
            storage_key, filename, content_type, size, sha256, metadata, status,
            error_message, stored_at, expires_at)
        SELECT common_uuid7(), now() - make_interval(secs => g), now(), %s, NULL,
            'bench/' || g, 'file-' || g || '.pdf', 'application/pdf', g * 10,
            repeat('ab', 32), '{{}}'::jsonb,
            CASE WHEN g %% 100 = 0 THEN 'failed' WHEN g %% 100 = 1 THEN 'uploading'
                 ELSE 'stored' END,
            '', now() - make_interval(secs => g),
            now() + interval '20 hours' - make_interval(secs => g)
        FROM generate_series(1, %s) g''', [user.pk, {files}])
    cur.execute('''
        INSERT INTO common_outboxevent (id, created_at, updated_at, aggregate_type,
            aggregate_id, event_type, idempotency_key, payload, status, attempts,
            max_attempts, next_attempt_at, delivered_at, last_error)
        SELECT common_uuid7(), now() - make_interval(secs => g), now(), 'file', g::text,
            'file.stored', 'metricsbench-' || g,
            jsonb_build_object('schema_version', 1, 'file', jsonb_build_object('id', g)),
            CASE WHEN g %% 200 = 0 THEN 'pending' ELSE 'delivered' END, 1, 8,
            CASE WHEN g %% 200 = 0 THEN now() - interval '1 minute' END, now(), ''
        FROM generate_series(1, %s) g''', [{events}])
    for endpoint in endpoints:
        cur.execute('''
            INSERT INTO common_webhookdelivery (id, created_at, updated_at, event_id,
                endpoint_id, status, attempts, max_attempts, next_attempt_at,
                lease_expires_at, delivered_at, last_attempt_at, last_status_code,
                last_duration_ms, last_error, last_response)
            SELECT common_uuid7(), e.created_at, now(), e.id, %s, s.status, 1, 8,
                CASE WHEN s.status = 'pending' THEN now() - interval '1 minute' END,
                CASE WHEN s.status = 'sending' THEN now() + interval '1 minute' END,
                CASE WHEN s.status = 'delivered' THEN now() END,
                now(), 200, 12, '', 'ok'
            FROM common_outboxevent e,
                LATERAL (SELECT CASE
                    WHEN e.status = 'pending' THEN 'pending'
                    WHEN random() < 0.01 THEN 'failed'
                    WHEN random() < 0.0005 THEN 'sending'
                    ELSE 'delivered' END AS status) s
            WHERE e.idempotency_key LIKE 'metricsbench-%%' ''', [endpoint.pk])
print(json.dumps({{"seeded": True}}))
"""

# Broker messages through the app's own transport (kombu makes its tables):
# a waiting backlog per queue and consumed rows not yet pruned.
BROKER_SEED = """
from django.db import connection
from boot.celery import app
with app.connection_for_write() as conn:
    for name in ("default", "high"):
        q = conn.SimpleQueue(name)
        q.put({"warm": True})
        q.close()
with connection.cursor() as cur:
    cur.execute('''
        INSERT INTO kombu_message (id, queue_id, visible, payload, version)
        SELECT nextval('message_id_sequence'), q.id, g % 10 = 0, '{}', 1
        FROM kombu_queue q, generate_series(1, 20000) g''')
"""

# The gauges' reads, each timed on the seeded data.
EXPLAIN = """
import time
from django.db import connection
from monitoring.metrics import selectors
from common.selectors import delivery_health

def timed(label, fn):
    started = time.perf_counter()
    fn()
    print(f"  {label:<28}{(time.perf_counter() - started) * 1000:8.1f} ms")

for _ in range(3):  # warm: connections, plans, caches
    delivery_health(); selectors.delivery_counts(); selectors.file_totals()
    selectors.beat_last_runs(); selectors.broker_queue_depths()
print("each gauge read, warm, in one process:")
timed("delivery_health (outbox)", delivery_health)
timed("delivery_counts", selectors.delivery_counts)
timed("file_totals", selectors.file_totals)
timed("beat_last_runs", selectors.beat_last_runs)
timed("broker_queue_depths", selectors.broker_queue_depths)
"""


def server_env(database_url: str, media: Path) -> dict[str, str]:
    return production_env(database_url, media, METRICS_TOKEN=TOKEN)


def seed(env: dict[str, str], *, deliveries: int, files: int) -> bool:
    subprocess.run([sys.executable, "scripts/ensure_db.py"], cwd=ROOT, env=env, check=True)
    manage(env, "migrate", "-v", "0")
    events = deliveries // 2  # each delivered to two endpoints
    code = SEED.format(email=BENCH_EMAIL, deliveries=deliveries, files=files, events=events)
    seeded = json.loads(manage(env, "shell", "-c", code).strip().splitlines()[-1])["seeded"]
    if seeded:
        manage(env, "shell", "-c", BROKER_SEED)
        # What autovacuum does after a bulk load: statistics, and the
        # visibility map that lets a count read an index alone.
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            for table in ("portal_uploadfile", "common_outboxevent", "common_webhookdelivery"):
                conn.execute(f"VACUUM (ANALYZE) {table}")
            conn.execute("VACUUM (ANALYZE) kombu_message")
    return seeded


def drop_database(database_url: str) -> None:
    url = urlsplit(database_url)
    name = url.path.lstrip("/")
    admin = url._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def timings(client: httpx.Client, url: str, count: int, **headers: str) -> list[float]:
    for _ in range(min(10, count)):  # warm up: connections, caches, plans
        response = client.get(url, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:300]}")
    out = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        out.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code}")
    return out


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the database for another run")
    parser.add_argument("--explain", action="store_true", help="time each gauge's read")
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="doorito-metrics-bench-") as tmp:
        work = Path(tmp)
        media = work / "media"
        media.mkdir()
        env = server_env(args.database_url, media)
        started = time.perf_counter()
        try:
            seeded = seed(env, deliveries=args.deliveries, files=args.files)
            seed_time = time.perf_counter() - started
            if args.explain:
                print(manage(env, "shell", "-c", EXPLAIN))
            server = GunicornServer(env, work / "server.log")
            try:
                with httpx.Client(base_url=server.url, timeout=60) as client:
                    auth = {"Authorization": f"Bearer {TOKEN}"}
                    body = client.get("/metrics", headers=auth).text
                    healthz = timings(client, "/healthz", args.requests)
                    metrics = timings(client, "/metrics", args.requests, **auth)
            finally:
                server.stop()
        finally:
            if not args.keep:
                drop_database(args.database_url)

    if "doorito_metrics_database_ok 1.0" not in body:
        raise SystemExit(f"a gauge failed to read; see the server log\n{body[-2000:]}")
    base_p95 = percentile(healthz, 95)
    print(
        f"/metrics: {args.requests} sequential scrapes with the token, one keep-alive "
        f"connection, gunicorn 1 sync worker, Production settings"
    )
    seeding = f"seeded in {seed_time:.0f} s" if seeded else "already seeded (--keep)"
    print(f"data: {args.deliveries} deliveries, {args.files} files ({seeding})")
    print(f"  {'path':<22}{'p50 ms':>9}{'p95 ms':>9}{'p95 / healthz':>15}")
    for name, values in (("/healthz (baseline)", healthz), ("/metrics", metrics)):
        p50, p95 = statistics.median(values), percentile(values, 95)
        print(f"  {name:<22}{p50:9.1f}{p95:9.1f}{p95 / base_p95:14.1f}x")
    verdict = "meets" if percentile(metrics, 95) <= 50 else "MISSES"
    print(f"/metrics p95 {verdict} the 50 ms target")


if __name__ == "__main__":
    main()
