"""JSON API benchmark: simple upload throughput and authenticated request rate.

Starts the real web server (gunicorn, one sync worker, ``Production`` settings)
on 127.0.0.1 against a throwaway database and measures, in the same run:

1. **Simple upload** (``POST /api/files``, multipart, bearer token) of a file
   just under ``FILE_UPLOAD_MAX_SIZE``: MB/s, against a plain copy of the same
   bytes on the same disk (``shutil.copyfile``). The API path reads the body,
   spools it to a temporary file (Django's upload handler), streams it to
   storage while hashing, and records it with its ``file.stored`` event.
   Also the server worker's peak RSS, which must stay far below the file size.
2. **Request rate** of ``GET /api/files?limit=50`` (token lookup, count, one
   page of 50 rows, JSON) against ``GET /healthz`` (no database, no auth) on
   the same server and connection: what auth + query + serialisation cost.

    python -m uv run python bench/api_endpoints.py [--size-mib 45] [--repeat 3] [--requests 500]

Needs PostgreSQL at ``DATABASE_URL`` (default: ``doorito_apibench`` on
127.0.0.1; created and migrated if missing, rows it made removed afterwards).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from gunicorn_server import GunicornServer, manage, production_env

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/doorito_apibench"
BENCH_EMAIL = "api-bench@example.com"


def server_env(database_url: str, media: Path) -> dict[str, str]:
    return production_env(database_url, media)


SETUP = """
from django.db import connection, transaction
from accounts.models import User
from accounts.services.tokens import token_create
u = User.objects.filter(email={email!r}).first()
if not ({reuse!r} and u is not None and u.upload_files.count() == {rows}):
    if u is not None:
        with connection.cursor() as cur:  # one DELETE, not the ORM's cascade row by row
            cur.execute("DELETE FROM portal_uploadfile WHERE owner_id = %s", [u.pk])
        u.delete()
    u = User.objects.create_user({email!r}, None)
    # The rows bulk_create made, written by one INSERT ... SELECT.
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "INSERT INTO portal_uploadfile (id, created_at, updated_at, owner_id, storage_key,"
            " filename, content_type, size, sha256, metadata, status, error_message,"
            " stored_at, expires_at)"
            " SELECT common_uuid7(), clock_timestamp(), now(), %s, 'bench/' || g,"
            " 'file-' || g || '.txt', 'text/plain', g, repeat('0', 64), '{{}}'::jsonb,"
            " 'stored', '', now(), now() FROM generate_series(0, %s - 1) g",
            [u.pk, {rows}],
        )
        cur.execute("ANALYZE portal_uploadfile")
print(token_create(user=u, name="bench")[1])
"""

CLEANUP = """
from django.db import connection
from accounts.models import User
u = User.objects.filter(email={email!r}).first()
if u is not None:
    with connection.cursor() as cur:
        cur.execute("DELETE FROM portal_uploadfile WHERE owner_id = %s", [u.pk])
    u.delete()
"""


def setup_database(env: dict[str, str], list_rows: int, *, reuse: bool = False) -> str:
    """Create + migrate the database, a user with ``list_rows`` files; return a token.

    With `reuse`, a user a ``--keep`` run left with exactly ``list_rows``
    files is kept (writing 1 000 000 rows takes minutes) and given a new token.
    """
    subprocess.run([sys.executable, "scripts/ensure_db.py"], cwd=ROOT, env=env, check=True)
    manage(env, "migrate", "-v", "0")
    code = SETUP.format(email=BENCH_EMAIL, reuse=reuse, rows=list_rows)
    return manage(env, "shell", "-c", code).strip().splitlines()[-1]


def cleanup_database(env: dict[str, str]) -> None:
    code = CLEANUP.format(email=BENCH_EMAIL)
    manage(env, "shell", "-c", code)


def make_file(path: Path, size: int) -> str:
    block = os.urandom(MIB)
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        for i in range(0, size, MIB):
            chunk = (i.to_bytes(8, "big") + block[8:])[: size - i]
            fh.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def timed_copy(src: Path, dst: Path) -> float:
    started = time.perf_counter()
    shutil.copyfile(src, dst)
    with dst.open("rb") as fh:
        os.fsync(fh.fileno())
    elapsed = time.perf_counter() - started
    dst.unlink()
    return elapsed


def timed_upload(client: httpx.Client, url: str, src: Path, expected_sha: str) -> float:
    started = time.perf_counter()
    with src.open("rb") as fh:
        response = client.post(
            url + "/api/files", files={"file": (src.name, fh, "application/octet-stream")}
        )
    elapsed = time.perf_counter() - started
    if response.status_code != 201 or response.json()["sha256"] != expected_sha:
        raise RuntimeError(f"upload failed: {response.status_code} {response.text[:300]}")
    client.delete(url + f"/api/files/{response.json()['id']}")
    return elapsed


def request_rate(client: httpx.Client, url: str, count: int) -> float:
    for _ in range(min(20, count)):  # warm up
        client.get(url).raise_for_status()
    started = time.perf_counter()
    for _ in range(count):
        client.get(url).raise_for_status()
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=45, help="upload size (< 50 MB limit)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--list-rows", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="leave the files for --reuse")
    parser.add_argument(
        "--reuse", action="store_true", help="use the files a --keep run left (same --list-rows)"
    )
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(
        prefix="doorito-api-bench-", dir=ROOT / ".data" if (ROOT / ".data").is_dir() else None
    ) as tmp:
        work = Path(tmp)
        media = work / "media"
        media.mkdir()
        env = server_env(args.database_url, media)
        token = setup_database(env, args.list_rows, reuse=args.reuse)
        src = work / "payload.bin"
        sha = make_file(src, args.size_mib * MIB)
        server = GunicornServer(env, work / "server.log")
        try:
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(headers=headers, timeout=300) as client:
                small = work / "small.bin"
                small_sha = make_file(small, MIB)
                timed_upload(client, server.url, small, small_sha)
                rss_small = server.peak_rss_mib()
                copies, uploads = [], []
                for _ in range(args.repeat):
                    copies.append(timed_copy(src, work / "copy.bin"))
                    uploads.append(timed_upload(client, server.url, src, sha))
                copy_s, upload_s = statistics.median(copies), statistics.median(uploads)
                size_mb = args.size_mib * MIB / 1e6
                rss = server.peak_rss_mib()

                list_rate = request_rate(client, server.url + "/api/files?limit=50", args.requests)
                health_rate = request_rate(client, server.url + "/healthz", args.requests)
        finally:
            server.stop()
            if not args.keep:
                cleanup_database(env)

    print(
        f"simple upload: {args.size_mib} MiB, median of {args.repeat} (httpx -> gunicorn, 1 worker)"
    )
    print(f"  plain copy (same disk):  {size_mb / copy_s:8.1f} MB/s")
    print(f"  POST /api/files:         {size_mb / upload_s:8.1f} MB/s")
    print(f"  ratio upload / copy:     {copy_s / upload_s:8.2f}x")
    print(f"  server worker peak RSS:  {rss_small:8.1f} MiB after a 1 MiB upload")
    print(f"                           {rss:8.1f} MiB after {args.size_mib} MiB uploads")
    print(f"request rate: {args.requests} sequential requests on one keep-alive connection")
    print(f"  GET /healthz:               {health_rate:8.0f} req/s")
    print(f"  GET /api/files?limit=50:    {list_rate:8.0f} req/s ({args.list_rows} files)")
    print(f"  ratio api / healthz:        {list_rate / health_rate:8.2f}x")


if __name__ == "__main__":
    main()
