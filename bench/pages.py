"""Portal page benchmark: server time of the busiest pages with a lot of data.

Starts the real web server (gunicorn, one sync worker, ``Production``
settings) on 127.0.0.1 against a throwaway database holding, for one
signed-in staff user, ``--files`` files (10 000) in ``--batches`` batches
(1 000), and ``--deliveries`` webhook deliveries (100 000: half the events
about that user's files, each delivered to two endpoints). It then times, in
the same run, ``--requests`` (200) sequential GETs on one keep-alive
connection of each page and of ``/healthz`` (no database, no session): the
baseline that shows what the machine and the HTTP round trip cost alone.

    .data/tools/bin/uv run python bench/pages.py [--requests 200]

Prints p50/p95 per page in milliseconds and the p95 ratio against
``/healthz``. The target (issue #10) is p95 <= 100 ms per page here; the
query count per page (<= 10) is asserted by the tests, not here.

``--keep`` leaves the rows, ``--reuse`` times them again when they match
``--files``/``--batches`` (seeding 1 000 000 files takes minutes); give such
runs a database of their own (``BENCH_DATABASE_URL``).

Needs PostgreSQL at ``DATABASE_URL`` (default: ``doorito_pagebench`` on
127.0.0.1; created and migrated if missing; the user and endpoints it made
are removed afterwards, with everything that hangs off them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from gunicorn_server import GunicornServer, manage, production_env

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/doorito_pagebench"
BENCH_EMAIL = "pages-bench@example.com"
ENDPOINT_URL = "http://127.0.0.1:9/pages-bench"


def server_env(database_url: str, media: Path) -> dict[str, str]:
    return production_env(database_url, media, STATIC_ROOT=str(media.parent / "static"))


# Rows are written with INSERT … SELECT generate_series: building 100 000
# deliveries through the services would take longer than the benchmark.
SEED = """
import json
from django.contrib.auth import SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection, transaction
from accounts.models import User
from common.models import WebhookEndpoint

User.objects.filter(email={email!r}).delete()
WebhookEndpoint.objects.filter(url={endpoint!r}).delete()
user = User.objects.create_user({email!r}, "bench-password-123", is_staff=True)
endpoints = [
    WebhookEndpoint.objects.create(
        url={endpoint!r}, secret="whsec_" + "A" * 43, description=f"bench {{i}}"
    )
    for i in range(2)
]
with transaction.atomic(), connection.cursor() as cur:
    cur.execute('''
        INSERT INTO portal_uploadbatch (id, created_at, updated_at, owner_id, status,
            expected_files, files_stored, files_failed, metadata)
        SELECT common_uuid7(), now() - make_interval(secs => g), now(), %s,
            CASE WHEN g %% 3 = 0 THEN 'in_progress' ELSE 'complete' END,
            10, CASE WHEN g %% 3 = 0 THEN 5 ELSE 10 END, 0,
            jsonb_build_object('name', 'batch ' || g)
        FROM generate_series(1, %s) g''', [user.pk, {batches}])
    cur.execute('''
        INSERT INTO portal_uploadfile (id, created_at, updated_at, owner_id, batch_id,
            storage_key, filename, content_type, size, sha256, metadata, status,
            error_message, stored_at, expires_at)
        SELECT common_uuid7(), now() - make_interval(secs => g), now(), %s, b.id,
            'bench/' || g, 'file-' || g || '.pdf', 'application/pdf', g * 1000,
            repeat('ab', 32), '{{}}'::jsonb, 'stored', '', now() - make_interval(secs => g),
            now() + interval '20 hours' - make_interval(secs => g)
        FROM generate_series(1, %s) g,
            (SELECT array_agg(id ORDER BY id) AS ids FROM portal_uploadbatch
             WHERE owner_id = %s) batches,
            LATERAL (SELECT batches.ids[1 + g %% %s] AS id) b''',
        [user.pk, {files}, user.pk, {batches}])
    cur.execute('''
        INSERT INTO common_outboxevent (id, created_at, updated_at, aggregate_type,
            aggregate_id, event_type, idempotency_key, payload, status, attempts,
            max_attempts, next_attempt_at, delivered_at, last_error)
        SELECT common_uuid7(), now() - make_interval(secs => g), now(), 'file', f.id::text,
            'file.stored', 'pagebench-' || g,
            jsonb_build_object('schema_version', 1, 'file', jsonb_build_object('id', f.id),
                               'uploader', jsonb_build_object('id', %s::text)),
            'delivered', 1, 8, NULL, now(), ''
        FROM generate_series(1, %s) g,
            (SELECT array_agg(id ORDER BY id) AS ids FROM portal_uploadfile
             WHERE owner_id = %s) files,
            LATERAL (SELECT files.ids[1 + g %% %s] AS id) f''',
        [str(user.pk), {events}, user.pk, {files}])
    for endpoint in endpoints:
        cur.execute('''
            INSERT INTO common_webhookdelivery (id, created_at, updated_at, event_id,
                endpoint_id, status, attempts, max_attempts, next_attempt_at,
                delivered_at, last_attempt_at, last_status_code, last_duration_ms,
                last_error, last_response)
            SELECT common_uuid7(), e.created_at, now(), e.id, %s,
                CASE WHEN random() < 0.02 THEN 'failed' ELSE 'delivered' END, 1, 8, NULL,
                now(), now(), 200, 12, '', 'ok'
            FROM common_outboxevent e WHERE e.idempotency_key LIKE 'pagebench-%%' ''',
            [endpoint.pk])
    cur.execute("ANALYZE portal_uploadfile, portal_uploadbatch")
    cur.execute("ANALYZE common_outboxevent, common_webhookdelivery")

session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
batch = user.upload_batches.order_by("-created_at").first()
file = user.upload_files.order_by("-created_at").first()
print(json.dumps({{"session": session.session_key, "file": str(file.id),
                  "batch": str(batch.id), "endpoint": str(endpoints[0].id)}}))
"""

# With --reuse: the seeded user's session and ids, when the data already has
# the asked numbers of files and batches (seeding 1 000 000 files takes minutes).
FIND = """
import json
from django.contrib.auth import SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from accounts.models import User
from common.models import WebhookEndpoint
user = User.objects.filter(email={email!r}).first()
endpoint = WebhookEndpoint.objects.filter(url={endpoint!r}).order_by("created_at").first()
found = None
if user is not None and endpoint is not None and (
    user.upload_files.count() == {files} and user.upload_batches.count() == {batches}
):
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    found = {{"session": session.session_key,
             "file": str(user.upload_files.order_by("-created_at").first().id),
             "batch": str(user.upload_batches.order_by("-created_at").first().id),
             "endpoint": str(endpoint.id)}}
print(json.dumps(found))
"""

CLEANUP = """
from accounts.models import User
from common.models import OutboxEvent, WebhookEndpoint
OutboxEvent.objects.filter(idempotency_key__startswith="pagebench-").delete()
WebhookEndpoint.objects.filter(url={endpoint!r}).delete()
User.objects.filter(email={email!r}).delete()
"""


def seed(
    env: dict[str, str], *, files: int, batches: int, deliveries: int, reuse: bool = False
) -> dict[str, str]:
    import json

    subprocess.run([sys.executable, "scripts/ensure_db.py"], cwd=ROOT, env=env, check=True)
    manage(env, "migrate", "-v", "0")
    # Production serves hashed static files: the templates need the manifest.
    manage(env, "collectstatic", "--noinput", "-v", "0")
    if reuse:
        code = FIND.format(email=BENCH_EMAIL, endpoint=ENDPOINT_URL, files=files, batches=batches)
        found = json.loads(manage(env, "shell", "-c", code).strip().splitlines()[-1])
        if found is not None:
            return found
    code = SEED.format(
        email=BENCH_EMAIL,
        endpoint=ENDPOINT_URL,
        files=files,
        batches=batches,
        events=deliveries // 2,
    )
    return json.loads(manage(env, "shell", "-c", code).strip().splitlines()[-1])


def timings(client: httpx.Client, url: str, count: int) -> list[float]:
    for _ in range(min(10, count)):  # warm up: connections, caches, plans
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:300]}")
    out = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(url)
        out.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code}")
    return out


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--batches", type=int, default=1_000)
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--only", nargs="*", help="page names to time (default: all)")
    parser.add_argument(
        "--keep", action="store_true", help="leave the seeded rows for a later --reuse"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="time the rows a --keep run left when they match --files/--batches",
    )
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="doorito-page-bench-") as tmp:
        work = Path(tmp)
        media = work / "media"
        media.mkdir()
        env = server_env(args.database_url, media)
        started = time.perf_counter()
        ids = seed(
            env,
            files=args.files,
            batches=args.batches,
            deliveries=args.deliveries,
            reuse=args.reuse,
        )
        seeded = time.perf_counter() - started
        pages = {
            "/healthz (baseline)": "/healthz",
            "dashboard": "/",
            "files list": "/files/",
            "file detail": f"/files/{ids['file']}/",
            "batch detail": f"/batches/{ids['batch']}/",
            "endpoint delivery log": f"/webhooks/{ids['endpoint']}/",
        }
        if args.only:
            pages = {k: v for k, v in pages.items() if k in args.only or v == "/healthz"}
        server = GunicornServer(env, work / "server.log")
        results = {}
        try:
            cookies = {"sessionid": ids["session"]}
            with httpx.Client(base_url=server.url, cookies=cookies, timeout=60) as client:
                for name, path in pages.items():
                    results[name] = timings(client, path, args.requests)
        finally:
            server.stop()
            if not args.keep:
                manage(env, "shell", "-c", CLEANUP.format(email=BENCH_EMAIL, endpoint=ENDPOINT_URL))

    base_p95 = percentile(results["/healthz (baseline)"], 95)
    print(
        f"portal pages: {args.requests} sequential GETs each, one keep-alive connection, "
        f"gunicorn 1 sync worker, Production settings"
    )
    print(
        f"data: {args.files} files, {args.batches} batches, {args.deliveries} deliveries "
        f"(seeded in {seeded:.0f} s)"
    )
    print(f"  {'page':<24}{'p50 ms':>9}{'p95 ms':>9}{'p95 / healthz':>15}")
    for name, values in results.items():
        p50, p95 = statistics.median(values), percentile(values, 95)
        print(f"  {name:<24}{p50:9.1f}{p95:9.1f}{p95 / base_p95:14.1f}x")


if __name__ == "__main__":
    main()
