"""A database restart answers 503 + Retry-After everywhere, and retries succeed.

Runs a private PostgreSQL cluster (never the shared one) and a real gunicorn;
the cluster is stopped with open connections (a fast shutdown, as in a
restart), then started again. The first test covers the API and tus, the
second a signed-in browser's pages and the signed download link under the
production configuration (issue #21). The third (issue #12's acceptance test)
does it while simple and tus uploaders keep sending: every answer must be a
success or a 503; every 201 must be a stored file whose bytes are in storage
with the sha256 the client sent; after the stale-upload cleanup no
``uploading`` record (and no unrecorded object) is left.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.fixtures.clusters import PrivateDatabase
from tests.web import WebServer, create_token, doorito_env, manage

TUS = {"Tus-Resumable": "1.0.0"}


def _requests(client: httpx.Client, upload_url: str) -> dict[str, httpx.Response]:
    name = base64.b64encode(b"notes.txt").decode()
    return {
        "list": client.get("/api/files"),
        "upload": client.post("/api/files", files={"file": ("a.txt", b"hello\n", "text/plain")}),
        "tus create": client.post(
            "/api/tus/",
            headers={**TUS, "Upload-Length": "5", "Upload-Metadata": f"filename {name}"},
        ),
        "tus patch": client.patch(
            upload_url,
            content=b"12345",
            headers={
                **TUS,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        ),
    }


@pytest.mark.processes
@pytest.mark.slow
def test_database_restart_answers_503_then_the_same_requests_succeed(tmp_path, private_database):
    cluster = private_database
    server = None
    try:
        # Persistent connections, as in production: the restart breaks them.
        env = doorito_env(cluster.url, tmp_path / "media", DATABASE_CONN_MAX_AGE="60")
        token = create_token(env, "restart@example.com")
        server = WebServer(env, tmp_path / "web.log", "--workers", "1")
        client = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert client.get("/api/files").status_code == 200
        created = client.post("/api/tus/", headers={**TUS, "Upload-Length": "5"})
        assert created.status_code == 201, created.text
        upload_url = created.headers["Location"]

        cluster.stop()
        down = _requests(client, upload_url)
        for name, response in down.items():
            assert response.status_code == 503, (name, response.status_code, server.output())
            assert response.headers["Retry-After"] == "2", name
            error = response.json()["error"]
            assert error["code"] == "database_unavailable", name
            assert error["details"] == {}
        assert down["tus patch"].headers["Tus-Resumable"] == "1.0.0"

        cluster.start()
        up = _requests(client, upload_url)
        assert up["list"].status_code == 200, server.output()
        assert up["upload"].status_code == 201, up["upload"].text
        assert up["tus create"].status_code == 201, up["tus create"].text
        assert up["tus patch"].status_code == 204, up["tus patch"].text
        assert up["tus patch"].headers["Upload-Offset"] == "5"

        # Nothing half-recorded: the two files sent while the database was up.
        with psycopg.connect(cluster.dsn) as conn:
            rows = conn.execute(
                "SELECT status, count(*) FROM portal_uploadfile GROUP BY status"
            ).fetchall()
        assert dict(rows) == {"stored": 2}
    finally:
        if server is not None:
            server.stop()


# A signed-in browser session, a stored file and its signed download link,
# made with the server's SECRET_KEY (the session hash and the link's
# signature both depend on it).
_SIGNED_IN_SETUP = """
import io
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from accounts.models import User
from portal.services.uploads import upload_file_create
from portal.storage import file_download_url

user = User.objects.create_user("pages@example.com", "pw-pages-12345")
file = upload_file_create(owner=user, stream=io.BytesIO(b"hello\\n"), filename="kept.txt")
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[-1]
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print(session.session_key, file.id, "/" + file_download_url(file).split("/", 3)[3])
"""
PRODUCTION_OVER_HTTP = {
    "DJANGO_CONFIGURATION": "Production",
    "ALLOWED_HOSTS": "127.0.0.1",
    # The TLS proxy of docs/operations.md is not here: plain HTTP to gunicorn.
    "SECURE_SSL_REDIRECT": "false",
    "SESSION_COOKIE_SECURE": "false",
    "CSRF_COOKIE_SECURE": "false",
}


def _assert_outage_answer(response: httpx.Response, *, page: bool, what: str) -> None:
    assert response.status_code == 503, (what, response.status_code, response.text[:300])
    assert response.headers["Retry-After"] == "2", what
    if page:
        assert response.headers["Content-Type"].startswith("text/html"), what
        assert "Doorito is busy for a moment" in response.text, what
    else:
        assert response.json()["error"]["code"] == "database_unavailable", what


@pytest.mark.processes
@pytest.mark.slow
def test_signed_in_pages_and_the_download_link_answer_503_during_an_outage(
    tmp_path, private_database
):
    """Issue #21 (item 6): outside /api/ an outage answered 500. Under the
    production command and configuration, with persistent connections that
    the stop breaks: every page a signed-in browser opens, the 404 page, the
    sign-in page and the signed download link (which webhook receivers fetch)
    answer 503 with Retry-After, a page for browsers and JSON for programs;
    once the database is back the same requests succeed."""
    cluster = private_database
    server = None
    secret = "outage-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
    env = doorito_env(cluster.url, tmp_path / "media", SECRET_KEY=secret)
    session_key, file_id, link = manage(env, "shell", "-c", _SIGNED_IN_SETUP).split()[-3:]
    production = {**env, **PRODUCTION_OVER_HTTP, "STATIC_ROOT": str(tmp_path / "static")}
    # Each request waits this long for a pooled connection before its 503.
    production["DATABASE_POOL_TIMEOUT"] = "1"
    manage(production, "collectstatic", "--noinput", "-v", "0")  # its pages need the manifest
    try:
        server = WebServer(
            production,
            tmp_path / "web.log",
            "-c",
            "deploy/gunicorn.conf.py",
            "--workers",
            "1",
        )
        browser = httpx.Client(
            base_url=server.url,
            cookies={"sessionid": session_key},
            headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
            timeout=30,
        )
        program = httpx.Client(base_url=server.url, timeout=30)
        pages = ["/", "/files/", f"/files/{file_id}/", "/batches/", "/tokens/"]
        for path in pages:  # signed in, and each thread holds a connection
            response = browser.get(path)
            assert response.status_code == 200, (path, response.status_code, server.output())
        assert "kept.txt" in browser.get("/files/").text
        assert program.get(link).content == b"hello\n"

        cluster.stop()  # fast shutdown: the persistent connections are cut
        for path in [*pages, *pages, "/no-such-page/", "/login/"]:
            _assert_outage_answer(browser.get(path), page=True, what=path)
        _assert_outage_answer(browser.get(link), page=True, what="link (browser)")
        for _ in range(3):
            _assert_outage_answer(program.get(link), page=False, what="link (program)")
            _assert_outage_answer(
                browser.get("/files/", headers={"Accept": "application/json"}),
                page=False,
                what="page (program)",
            )
        assert "Internal Server Error" not in server.output()

        cluster.start()
        assert browser.get("/files/").status_code == 200, server.output()
        assert program.get(link).content == b"hello\n"
    finally:
        if server is not None:
            server.stop()


SIMPLE_UPLOADERS = 4
TUS_UPLOADERS = 3
TUS_CHUNK = 64 * 1024
PAUSE_AFTER_503 = 0.1

# What each kind of request may answer while the database comes and goes.
ALLOWED = {
    "simple": {201, 503},
    "tus create": {201, 503},
    "tus patch": {204, 503},
    "tus head": {200, 503},
}


@dataclass
class Outcomes:
    statuses: dict[str, Counter[int]] = field(
        default_factory=lambda: {kind: Counter() for kind in ALLOWED}
    )
    # file id → sha256 the client sent, for every simple upload answered 201.
    simple_files: dict[str, str] = field(default_factory=dict)
    # upload URL → sha256, for every tus upload the server reported complete.
    tus_uploads: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, kind: str, response: httpx.Response) -> None:
        with self.lock:
            self.statuses[kind][response.status_code] += 1
            if response.status_code not in ALLOWED[kind]:
                self.failures.append(f"{kind}: {response.status_code} {response.text[:300]}")


def _simple_uploader(client: httpx.Client, stop: threading.Event, out: Outcomes, n: int) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        data = os.urandom(64 * 1024 * (1 + (i + n) % 8))
        try:
            response = client.post(
                "/api/files", files={"file": (f"load-{n}-{i}.bin", data, "application/x-test")}
            )
        except httpx.TransportError as exc:
            out.failures.append(f"simple: {exc!r}")
            continue
        out.note("simple", response)
        if response.status_code == 201:
            with out.lock:
                out.simple_files[response.json()["id"]] = hashlib.sha256(data).hexdigest()
        elif response.status_code == 503:
            time.sleep(PAUSE_AFTER_503)


def _tus_request(client: httpx.Client, out: Outcomes, kind: str, *args, **kwargs) -> httpx.Response:
    """One request, sent again until it is not a 503 (what tus clients do)."""
    while True:
        response = client.request(*args, **kwargs)
        out.note(kind, response)
        if response.status_code != 503:
            return response
        time.sleep(PAUSE_AFTER_503)


def _tus_upload(client: httpx.Client, out: Outcomes, data: bytes, name: str) -> None:
    metadata = "filename " + base64.b64encode(name.encode()).decode()
    created = _tus_request(
        client,
        out,
        "tus create",
        "POST",
        "/api/tus/",
        headers={**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": metadata},
    )
    if created.status_code != 201:
        return
    url = created.headers["Location"]
    offset = 0
    while offset < len(data):
        patched = client.patch(
            url,
            content=data[offset : offset + TUS_CHUNK],
            headers={
                **TUS,
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        out.note("tus patch", patched)
        if patched.status_code == 204:
            offset = int(patched.headers["Upload-Offset"])
            continue
        if patched.status_code != 503:
            return
        # Where did it get to? The offset lives in the database.
        time.sleep(PAUSE_AFTER_503)
        head = _tus_request(client, out, "tus head", "HEAD", url, headers=TUS)
        if head.status_code != 200:
            return
        offset = int(head.headers["Upload-Offset"])
    with out.lock:
        out.tus_uploads[url] = hashlib.sha256(data).hexdigest()


def _tus_uploader(client: httpx.Client, stop: threading.Event, out: Outcomes, n: int) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        data = os.urandom(TUS_CHUNK * 3 + 1000 * n + i)
        try:
            _tus_upload(client, out, data, f"tus-{n}-{i}.bin")
        except httpx.TransportError as exc:
            out.failures.append(f"tus: {exc!r}")


def _rows(cluster: PrivateDatabase, query: str) -> list[tuple]:
    with psycopg.connect(cluster.dsn) as conn:
        return conn.execute(query).fetchall()


def _stored_objects(media: Path) -> dict[str, str]:
    """Every object under ``uploads/``, by key, with its sha256."""
    root = media / "uploads"
    if not root.exists():
        return {}
    return {
        str(path.relative_to(media)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in root.rglob("*")
        if path.is_file()
    }


CLEANUP = """
from datetime import timedelta
from django.utils import timezone
from portal.services.cleanup import cleanup_stale_uploading_files
from portal.services.tus.expiry import upload_sessions_expire
later = timezone.now() + timedelta(days=2)
print(upload_sessions_expire(now=later))
print(cleanup_stale_uploading_files(stale_minutes=60, now=later))
"""


@pytest.mark.processes
@pytest.mark.slow
def test_restarting_the_database_under_upload_load_answers_201_or_503_and_loses_nothing(
    tmp_path, private_database
):
    cluster = private_database
    server = None
    stop = threading.Event()
    threads: list[threading.Thread] = []
    out = Outcomes()
    media = tmp_path / "media"
    try:
        env = doorito_env(cluster.url, media, DATABASE_CONN_MAX_AGE="60")
        token = create_token(env, "load@example.com")
        server = WebServer(
            env,
            tmp_path / "web.log",
            "-c",
            "deploy/gunicorn.conf.py",
            "--workers",
            "2",
            "--threads",
            "8",
        )
        clients = [
            httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
            )
            for _ in range(SIMPLE_UPLOADERS + TUS_UPLOADERS)
        ]
        for n in range(SIMPLE_UPLOADERS):
            threads.append(
                threading.Thread(target=_simple_uploader, args=(clients[n], stop, out, n))
            )
        for n in range(TUS_UPLOADERS):
            client = clients[SIMPLE_UPLOADERS + n]
            threads.append(threading.Thread(target=_tus_uploader, args=(client, stop, out, n)))
        for thread in threads:
            thread.start()

        time.sleep(3)
        cluster.stop()  # a restart: fast shutdown, open connections cut
        cluster.start()
        time.sleep(3)
        cluster.stop()  # a short outage
        time.sleep(2)
        cluster.start()
        time.sleep(3)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
            assert not thread.is_alive(), "an uploader hung"

        print("answers:", {kind: dict(counts) for kind, counts in out.statuses.items()})
        assert out.failures == [], (out.failures[:10], server.output())
        # The outages were real, and so was the load around them.
        assert sum(out.statuses[kind][503] for kind in ALLOWED) > 0, out.statuses
        assert len(out.simple_files) > 10, out.statuses
        assert len(out.tus_uploads) > 3, out.statuses

        files = {
            str(pk): (status, sha256, key)
            for pk, status, sha256, key in _rows(
                cluster, "SELECT id, status, sha256, storage_key FROM portal_uploadfile"
            )
        }
        objects = _stored_objects(media)
        for file_id, sha256 in out.simple_files.items():
            status, recorded, key = files[file_id]
            assert (status, recorded) == ("stored", sha256), file_id
            assert objects[key] == sha256, file_id
        tus_files = dict(
            _rows(
                cluster,
                "SELECT s.id::text, f.sha256 FROM portal_uploadsession s "
                "JOIN portal_uploadfile f ON f.id = s.file_id WHERE f.status = 'stored'",
            )
        )
        for url, sha256 in out.tus_uploads.items():
            assert tus_files[url.rstrip("/").rsplit("/", 1)[-1]] == sha256, url

        manage(env, "shell", "-c", CLEANUP)
        assert _rows(
            cluster, "SELECT count(*) FROM portal_uploadfile WHERE status = 'uploading'"
        ) == [(0,)]
        # Storage holds exactly the bytes of the stored files: nothing orphaned.
        stored = dict(
            _rows(
                cluster, "SELECT storage_key, sha256 FROM portal_uploadfile WHERE status = 'stored'"
            )
        )
        assert _stored_objects(media) == stored
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        if server is not None:
            server.stop()
