"""A database restart answers 503 + Retry-After on the API and tus, and retries succeed.

Runs a private PostgreSQL cluster (never the shared one) and a real gunicorn;
the cluster is stopped with open connections (a fast shutdown, as in a
restart), then started again.
"""

from __future__ import annotations

import base64

import httpx
import psycopg
import pytest

from scripts.private_cluster import PrivateCluster
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


@pytest.mark.slow
def test_database_restart_answers_503_then_the_same_requests_succeed(tmp_path):
    cluster = PrivateCluster(dbname="doorito_restart")
    server = None
    try:
        cluster.start()
        # Persistent connections, as in production: the restart breaks them.
        env = doorito_env(cluster.url, tmp_path / "media", DATABASE_CONN_MAX_AGE="60")
        manage(env, "migrate", "--noinput")
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
        with psycopg.connect(cluster.url.replace("postgres://", "postgresql://")) as conn:
            rows = conn.execute(
                "SELECT status, count(*) FROM portal_uploadfile GROUP BY status"
            ).fetchall()
        assert dict(rows) == {"stored": 2}
    finally:
        if server is not None:
            server.stop()
        cluster.destroy()
