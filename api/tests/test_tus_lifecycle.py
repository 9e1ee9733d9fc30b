"""The tus 1.0 endpoint over HTTP: deferred length, termination, expiry, overrides, locks, CORS."""

from __future__ import annotations

import hashlib
import http.client
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from api.tests.tus_helpers import (
    OCTET,
    TUS,
    metadata,
    part_objects,
    session_for,
)
from portal.models import UploadPart, UploadSession

pytestmark = pytest.mark.django_db(transaction=True)


# --- deferred length, termination, expiry ----------------------------------------------


def test_deferred_length(tus):
    url = tus.create(**{"Upload-Defer-Length": "1", "Upload-Metadata": metadata(filename="d.txt")})
    head = tus.head(url)
    assert head.headers["Upload-Defer-Length"] == "1"
    assert "Upload-Length" not in head.headers
    assert tus.patch(url, b"abc", 0).status_code == 204
    last = tus.patch(url, b"def", 3, **{"Upload-Length": "6"})
    assert last.status_code == 204
    assert last.headers["Upload-Offset"] == "6"
    head = tus.head(url)
    assert head.headers["Upload-Length"] == "6"
    assert "Upload-Defer-Length" not in head.headers
    session = session_for(url)
    assert session.file.sha256 == hashlib.sha256(b"abcdef").hexdigest()
    assert session.file.filename == "d.txt"


def test_upload_length_cannot_change_once_set(tus):
    url = tus.create(**{"Upload-Defer-Length": "1"})
    assert tus.patch(url, b"abc", 0, **{"Upload-Length": "10"}).status_code == 204
    assert tus.patch(url, b"def", 3, **{"Upload-Length": "12"}).status_code == 400
    assert session_for(url).offset == 3


def test_delete_then_head_is_410_and_data_is_gone(tus, settings):
    url = tus.create(10)
    tus.patch(url, b"01234", 0)
    assert len(part_objects(settings)) == 1
    response = tus.request("DELETE", url)
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == "1.0.0"
    head = tus.head(url)
    assert head.status_code == 410
    assert "Upload-Offset" not in head.headers
    assert head.headers["Cache-Control"] == "no-store"
    assert head.headers["Tus-Resumable"] == "1.0.0"
    assert tus.patch(url, b"56789", 5).status_code == 410
    assert tus.request("DELETE", url).status_code == 410
    assert part_objects(settings) == []
    assert UploadPart.objects.count() == 0
    assert session_for(url).status == "terminated"


def test_expired_upload_is_410_and_the_sweep_deletes_its_data(tus, settings):

    from portal.services.tus.expiry import upload_sessions_expire

    url = tus.create(10)
    fresh = tus.create(10)
    tus.patch(url, b"01234", 0)
    tus.patch(fresh, b"01234", 0)
    UploadSession.objects.filter(id=session_for(url).id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    # Refused before the sweep has run ...
    assert tus.head(url).status_code == 410
    assert tus.patch(url, b"56789", 5).status_code == 410
    result = upload_sessions_expire()
    assert (result.expired, result.remaining) == (1, 0)
    # ... and after it, with the bytes gone from storage.
    assert tus.head(url).status_code == 410
    assert session_for(url).status == "expired"
    assert UploadPart.objects.filter(session__id=session_for(url).id).count() == 0
    remaining = part_objects(settings)
    assert len(remaining) == 1 and str(session_for(fresh).id) in str(remaining[0])
    assert tus.head(fresh).headers["Upload-Offset"] == "5"


# --- method override, locking, CORS -----------------------------------------------------


def test_x_http_method_override(tus):
    url = tus.create(4)
    response = tus.request(
        "POST",
        url,
        headers={**OCTET, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"},
        content=b"abcd",
    )
    assert response.status_code == 204
    assert response.headers["Upload-Offset"] == "4"
    other = tus.create(4)
    deleted = tus.request("POST", other, headers={"X-HTTP-Method-Override": "DELETE"})
    assert deleted.status_code == 204
    assert session_for(other).status == "terminated"


def _wait_for_advisory_lock(timeout: float = 10) -> None:
    """Until a connection to this test database (the live server's PATCH) holds an advisory lock."""
    from django.db import connection

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.02)
    raise AssertionError("the first PATCH never took the upload's lock")


def test_concurrent_requests_on_one_upload_get_423(live_server, tus):
    url = tus.create(10)
    parsed = urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    conn.putrequest("PATCH", parsed.path)
    for key, value in {
        **TUS,
        **tus.auth,
        **OCTET,
        "Upload-Offset": "0",
        "Content-Length": "10",
    }.items():
        conn.putheader(key, value)
    conn.endheaders()
    conn.send(b"01234")  # half the body: the server holds the lock while it waits for the rest
    try:
        _wait_for_advisory_lock()
        busy = tus.patch(url, b"01234", 0)
        assert busy.status_code == 423
        assert busy.headers["Tus-Resumable"] == "1.0.0"
        assert busy.json()["error"]["code"] == "upload_locked"
        assert tus.request("DELETE", url).status_code == 423
    finally:
        conn.send(b"56789")
        first = conn.getresponse()
        conn.close()
    assert first.status == 204
    assert first.getheader("Upload-Offset") == "10"
    assert session_for(url).file.sha256 == hashlib.sha256(b"0123456789").hexdigest()


def test_cors_for_allowed_origins(tus, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    preflight = tus.http.options(
        tus.base,
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "tus-resumable,upload-offset,content-type",
        },
    )
    # django-cors-headers answers preflights itself (200, empty body).
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]
    allowed = {
        h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert {
        "tus-resumable",
        "upload-offset",
        "upload-length",
        "upload-metadata",
        "upload-checksum",
        "upload-concat",
        "upload-defer-length",
        "x-http-method-override",
        "authorization",
        "content-type",
    } <= allowed

    created = tus.request(
        "POST", headers={"Upload-Length": "3", "Origin": "https://app.example.com"}
    )
    assert created.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    exposed = {
        h.strip().lower() for h in created.headers["Access-Control-Expose-Headers"].split(",")
    }
    assert {
        "location",
        "upload-offset",
        "upload-length",
        "upload-expires",
        "upload-metadata",
        "upload-concat",
        "tus-resumable",
        "tus-version",
        "tus-extension",
        "tus-max-size",
        "tus-checksum-algorithm",
    } <= exposed

    stranger = tus.http.options(
        tus.base,
        headers={"Origin": "https://evil.example.net", "Access-Control-Request-Method": "PATCH"},
    )
    assert "Access-Control-Allow-Origin" not in stranger.headers

    # A discovery OPTIONS (no Access-Control-Request-Method) still reaches tus.
    discovery = tus.http.options(tus.base, headers={"Origin": "https://app.example.com"})
    assert discovery.status_code == 204 and discovery.headers["Tus-Version"] == "1.0.0"
    assert discovery.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
