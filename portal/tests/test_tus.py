"""The tus 1.0 endpoint over real HTTP (pytest-django's live server, real PostgreSQL).

Every status code the protocol names is checked with its headers; state
is checked in the database and in storage after each refused request.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import time
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from django.utils import timezone

from accounts.models import User
from accounts.services.tokens import token_create, token_revoke
from portal.models import UploadFile, UploadPart, UploadSession

pytestmark = pytest.mark.django_db(transaction=True)

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {"Content-Type": "application/offset+octet-stream"}
IMF_FIXDATE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$"
)


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def metadata(**values: str) -> str:
    return ",".join(f"{k} {b64(v)}" for k, v in values.items())


class Tus:
    """A bare tus client over httpx, so each test controls every header."""

    user: User  # whose token it sends (set by the fixture)

    def __init__(self, base_url: str, raw_token: str | None):
        self.base = base_url.rstrip("/") + "/api/tus/"
        self.http = httpx.Client(timeout=30)
        self.auth = {"Authorization": f"Bearer {raw_token}"} if raw_token else {}

    def request(self, method: str, url: str | None = None, *, headers=None, content=None, tus=True):
        all_headers = {**(TUS if tus else {}), **self.auth, **(headers or {})}
        return self.http.request(method, url or self.base, headers=all_headers, content=content)

    def create(self, length: int | None = None, **headers) -> str:
        extra = {"Upload-Length": str(length)} if length is not None else {}
        response = self.request("POST", headers={**extra, **headers})
        assert response.status_code == 201, response.text
        return response.headers["Location"]

    def head(self, url: str) -> httpx.Response:
        return self.request("HEAD", url)

    def patch(self, url: str, data: bytes, offset: int, **headers) -> httpx.Response:
        return self.request(
            "PATCH", url, headers={**OCTET, "Upload-Offset": str(offset), **headers}, content=data
        )


def _raw_token(user: User) -> str:
    return token_create(user=user, name="tus")[1]


@pytest.fixture
def owner(transactional_db) -> User:
    return User.objects.create_user("tus-owner@example.com", "pw-owner-1234")


@pytest.fixture
def intruder(transactional_db) -> User:
    return User.objects.create_user("tus-other@example.com", "pw-other-1234")


@pytest.fixture
def tus(live_server, owner) -> Tus:
    client = Tus(live_server.url, _raw_token(owner))
    client.user = owner
    return client


def session_for(url: str) -> UploadSession:
    return UploadSession.objects.get(id=urlsplit(url).path.rstrip("/").rsplit("/", 1)[1])


def stored_objects(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def part_objects(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "tus"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


# --- discovery and version ---------------------------------------------------------


def test_options_advertises_the_server_without_credentials(live_server, settings):
    response = httpx.options(live_server.url + "/api/tus/")
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Tus-Version"] == "1.0.0"
    extensions = set(response.headers["Tus-Extension"].split(","))
    assert extensions == {
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "expiration",
        "checksum",
        "termination",
        "concatenation",
    }
    assert response.headers["Tus-Max-Size"] == str(settings.RESUMABLE_UPLOAD_MAX_SIZE)
    assert {"sha1", "md5", "sha256"} <= set(response.headers["Tus-Checksum-Algorithm"].split(","))


@pytest.mark.parametrize("version", [None, "0.2.2", "2.0.0"])
def test_unsupported_tus_resumable_is_412_with_tus_version(tus, version):
    headers = {"Upload-Length": "10"}
    if version:
        headers["Tus-Resumable"] = version
    response = tus.http.post(tus.base, headers={**tus.auth, **headers})
    assert response.status_code == 412
    assert response.headers["Tus-Version"] == "1.0.0"
    assert response.json()["error"]["code"] == "unsupported_tus_version"
    assert UploadSession.objects.count() == 0


# --- authentication and isolation ------------------------------------------------------


def test_without_a_token_every_method_is_401(live_server, tus):
    url = tus.create(10)
    anonymous = Tus(live_server.url, None)
    assert anonymous.request("POST", headers={"Upload-Length": "10"}).status_code == 401
    response = anonymous.head(url)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert anonymous.patch(url, b"abc", 0).status_code == 401
    assert anonymous.request("DELETE", url).status_code == 401
    bogus = Tus(live_server.url, "dtk_not-a-real-token")
    assert bogus.head(url).status_code == 401
    assert session_for(url).offset == 0
    assert UploadSession.objects.count() == 1


def test_revoked_token_is_401(live_server, owner):
    token, raw = token_create(user=owner, name="soon revoked")
    client = Tus(live_server.url, raw)
    url = client.create(10)
    token_revoke(token=token)
    assert client.head(url).status_code == 401
    assert client.patch(url, b"0123456789", 0).status_code == 401
    assert client.request("POST", headers={"Upload-Length": "1"}).status_code == 401
    assert session_for(url).offset == 0


def test_another_users_upload_is_404(live_server, tus, intruder):
    url = tus.create(10)
    tus.patch(url, b"01234", 0)
    other = Tus(live_server.url, _raw_token(intruder))
    head = other.head(url)
    assert head.status_code == 404
    assert "Upload-Offset" not in head.headers
    assert head.headers["Cache-Control"] == "no-store"
    response = other.patch(url, b"56789", 5)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert other.request("DELETE", url).status_code == 404
    session = session_for(url)
    assert (session.offset, session.status) == (5, "active")


def test_unknown_and_malformed_upload_ids_are_404(tus):
    assert tus.head(tus.base + "0190f5c1-0000-7000-8000-000000000000").status_code == 404
    assert tus.head(tus.base + "not-a-uuid").status_code == 404


# --- creation, HEAD, PATCH ------------------------------------------------------------


def test_creation_head_and_patch_headers(tus, settings):
    meta = metadata(filename="notes.txt", filetype="text/plain")
    response = tus.request("POST", headers={"Upload-Length": "11", "Upload-Metadata": meta})
    assert response.status_code == 201
    url = response.headers["Location"]
    assert url.startswith(tus.base)
    assert IMF_FIXDATE.match(response.headers["Upload-Expires"])
    assert response.headers["Tus-Resumable"] == "1.0.0"

    head = tus.head(url)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == "11"
    assert head.headers["Upload-Metadata"] == meta
    assert head.headers["Cache-Control"] == "no-store"
    assert head.headers["Tus-Resumable"] == "1.0.0"
    expires = parsedate_to_datetime(head.headers["Upload-Expires"])
    assert expires.tzinfo is not None

    patched = tus.patch(url, b"hello ", 0)
    assert patched.status_code == 204
    assert patched.headers["Upload-Offset"] == "6"
    assert IMF_FIXDATE.match(patched.headers["Upload-Expires"])
    done = tus.patch(url, b"world", 6)
    assert done.status_code == 204
    assert done.headers["Upload-Offset"] == "11"

    session = session_for(url)
    assert session.status == "complete"
    file = session.file
    assert file.status == UploadFile.Status.STORED
    assert file.filename == "notes.txt"
    assert file.content_type == "text/plain"
    assert file.size == 11
    assert file.sha256 == hashlib.sha256(b"hello world").hexdigest()
    assert file.owner == tus.user
    assert UploadPart.objects.count() == 0
    assert part_objects(settings) == []
    assert len(stored_objects(settings)) == 1


def test_creation_with_upload(tus):
    response = tus.request(
        "POST",
        headers={"Upload-Length": "10", **OCTET, "Upload-Metadata": metadata(filename="a.bin")},
        content=b"0123",
    )
    assert response.status_code == 201
    assert response.headers["Upload-Offset"] == "4"
    url = response.headers["Location"]
    assert tus.patch(url, b"456789", 4).status_code == 204
    assert session_for(url).file.sha256 == hashlib.sha256(b"0123456789").hexdigest()


def test_creation_without_length_or_with_both_is_400(tus):
    assert tus.request("POST").status_code == 400
    both = tus.request("POST", headers={"Upload-Length": "5", "Upload-Defer-Length": "1"})
    assert both.status_code == 400
    assert both.json()["error"]["code"] == "invalid_tus_header"
    bad = tus.request("POST", headers={"Upload-Length": "-5"})
    assert bad.status_code == 400
    assert (
        tus.request("POST", headers={"Upload-Length": "5", "Upload-Metadata": "k !!"}).status_code
        == 400
    )
    assert UploadSession.objects.count() == 0


def test_upload_over_tus_max_size_is_413(tus, settings):
    settings.RESUMABLE_UPLOAD_MAX_SIZE = 1000
    options = tus.request("OPTIONS")
    assert options.headers["Tus-Max-Size"] == "1000"
    response = tus.request("POST", headers={"Upload-Length": "1001"})
    assert response.status_code == 413
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.json()["error"]["code"] == "payload_too_large"
    assert UploadSession.objects.count() == 0

    # A deferred-length upload may not grow past the limit either.
    url = tus.create(**{"Upload-Defer-Length": "1"})
    assert tus.patch(url, b"x" * 600, 0).status_code == 204
    over = tus.patch(url, b"x" * 600, 600)
    assert over.status_code == 413
    assert session_for(url).offset == 600
    late = tus.patch(url, b"", 600, **{"Upload-Length": "5000"})
    assert late.status_code == 413
    assert session_for(url).length is None


def test_patch_with_wrong_content_type_is_415(tus):
    url = tus.create(10)
    response = tus.request(
        "PATCH",
        url,
        headers={"Content-Type": "application/octet-stream", "Upload-Offset": "0"},
        content=b"0123456789",
    )
    assert response.status_code == 415
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.json()["error"]["code"] == "invalid_content_type"
    assert session_for(url).offset == 0
    assert UploadPart.objects.count() == 0


def test_patch_at_wrong_offset_is_409(tus):
    url = tus.create(10)
    assert tus.patch(url, b"01234", 0).status_code == 204
    response = tus.patch(url, b"01234", 0)
    assert response.status_code == 409
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert "Upload-Offset" not in response.headers
    assert response.json()["error"]["code"] == "offset_mismatch"
    assert response.json()["error"]["details"]["offset"] == 5
    assert tus.patch(url, b"x", 7).status_code == 409
    assert tus.head(url).headers["Upload-Offset"] == "5"
    assert UploadPart.objects.count() == 1


def test_patch_without_upload_offset_is_400(tus):
    url = tus.create(10)
    response = tus.request("PATCH", url, headers=OCTET, content=b"0123")
    assert response.status_code == 400
    assert session_for(url).offset == 0


def test_patch_past_upload_length_is_413_and_stores_nothing(tus, settings):
    url = tus.create(4)
    response = tus.patch(url, b"0123456", 0)
    assert response.status_code == 413
    assert session_for(url).offset == 0
    assert part_objects(settings) == []


# --- checksum --------------------------------------------------------------------------


def _checksum(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def test_checksum_mismatch_is_460_and_discards_the_chunk(tus, settings):
    url = tus.create(10)
    assert (
        tus.patch(url, b"01234", 0, **{"Upload-Checksum": _checksum("sha1", b"01234")}).status_code
        == 204
    )
    bad = tus.patch(url, b"56789", 5, **{"Upload-Checksum": _checksum("sha1", b"nope!")})
    assert bad.status_code == 460
    assert bad.headers["Tus-Resumable"] == "1.0.0"
    assert bad.json()["error"]["code"] == "checksum_mismatch"
    head = tus.head(url)
    assert head.headers["Upload-Offset"] == "5"
    assert UploadPart.objects.count() == 1
    assert len(part_objects(settings)) == 1

    good = tus.patch(url, b"56789", 5, **{"Upload-Checksum": _checksum("sha1", b"56789")})
    assert good.status_code == 204
    assert session_for(url).file.sha256 == hashlib.sha256(b"0123456789").hexdigest()
    assert part_objects(settings) == []


@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_other_checksum_algorithms(tus, algorithm):
    url = tus.create(6)
    bad = tus.patch(url, b"abcdef", 0, **{"Upload-Checksum": _checksum(algorithm, b"abcdeF")})
    assert bad.status_code == 460
    ok = tus.patch(url, b"abcdef", 0, **{"Upload-Checksum": _checksum(algorithm, b"abcdef")})
    assert ok.status_code == 204
    part_checksum = session_for(url).file  # finalised
    assert part_checksum.sha256 == hashlib.sha256(b"abcdef").hexdigest()


def test_unsupported_checksum_algorithm_is_400(tus):
    url = tus.create(3)
    response = tus.patch(url, b"abc", 0, **{"Upload-Checksum": "crc32 AAAAAA=="})
    assert response.status_code == 400
    assert session_for(url).offset == 0


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
    from datetime import timedelta

    from django.utils import timezone

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


# --- metadata, finalisation, concatenation -----------------------------------------------


def test_metadata_lands_on_the_file_record_and_batch(tus):
    from common.models import OutboxEvent
    from portal.services.batches import batch_create

    batch = batch_create(owner=tus.user, expected_files=1)
    url = tus.create(
        8,
        **{
            "Upload-Metadata": metadata(
                filename="r\u00e9sum\u00e9.pdf",
                filetype="application/pdf",
                batch=str(batch.id),
                note="hi",
            )
        },
    )
    assert tus.patch(url, b"%PDF-1.4", 0).status_code == 204
    file = session_for(url).file
    assert file.filename == "r\u00e9sum\u00e9.pdf"
    assert file.content_type == "application/pdf"
    assert file.batch_id == batch.id
    assert file.metadata["note"] == "hi"
    batch.refresh_from_db()
    assert (batch.files_stored, batch.status) == (1, "complete")
    assert (
        OutboxEvent.objects.filter(event_type="file.stored", aggregate_id=str(file.id)).count() == 1
    )


@pytest.mark.parametrize("key", ["filename", "filetype", "name", "type", "note"])
def test_nul_in_upload_metadata_is_400_naming_the_key(tus, key):
    response = tus.request(
        "POST", headers={"Upload-Length": "4", "Upload-Metadata": metadata(**{key: "a\x00b"})}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["details"] == {
        "field": f"Upload-Metadata {key!r}",
        "header": "Upload-Metadata",
        "key": key,
    }
    assert "NUL" in error["message"]
    assert not UploadSession.objects.exists()


def test_someone_elses_batch_is_refused_at_creation(live_server, tus, intruder):
    from portal.services.batches import batch_create

    batch = batch_create(owner=intruder)
    response = tus.request(
        "POST", headers={"Upload-Length": "3", "Upload-Metadata": metadata(batch=str(batch.id))}
    )
    assert response.status_code == 404
    assert UploadSession.objects.count() == 0


def test_refused_type_fails_the_upload_without_keeping_bytes(tus, settings):
    from common.models import OutboxEvent

    settings.FILE_UPLOAD_ALLOWED_TYPES = ["image/png"]
    url = tus.create(12, **{"Upload-Metadata": metadata(filename="run.sh")})
    response = tus.patch(url, b"#!/bin/sh\nls", 0)
    assert response.status_code == 415
    session = session_for(url)
    assert session.status == "failed"
    assert session.file.status == UploadFile.Status.FAILED
    assert part_objects(settings) == []
    assert not OutboxEvent.objects.filter(event_type="file.stored").exists()
    assert [p for p in stored_objects(settings)] == []


@pytest.mark.parametrize(
    ("data", "meta"),
    [
        (b"<?php echo 1; ?>", {"filename": "a.png"}),
        (b"plain text here", {"filename": "a.png", "filetype": "image/png"}),
        (b"plain text here", {"filetype": "image/png"}),
    ],
)
def test_allow_list_needs_recognised_content_on_the_tus_path_too(tus, settings, data, meta):
    settings.FILE_UPLOAD_ALLOWED_TYPES = ["image/png", "image/jpeg", "application/pdf"]
    url = tus.create(len(data), **{"Upload-Metadata": metadata(**meta)})
    response = tus.patch(url, data, 0)
    assert response.status_code == 415, response.text
    assert session_for(url).file.status == UploadFile.Status.FAILED
    assert not UploadFile.objects.filter(status=UploadFile.Status.STORED).exists()


def test_empty_png_over_tus_is_refused_with_an_allow_list(tus, settings):
    settings.FILE_UPLOAD_ALLOWED_TYPES = ["image/png"]
    response = tus.request(
        "POST", headers={"Upload-Length": "0", "Upload-Metadata": metadata(filename="a.png")}
    )
    assert response.status_code == 415, response.text
    assert not UploadFile.objects.filter(status=UploadFile.Status.STORED).exists()


def test_concatenation_of_partial_uploads(tus, settings):
    first = tus.create(5, **{"Upload-Concat": "partial"})
    second = tus.create(6, **{"Upload-Concat": "partial"})
    assert tus.head(first).headers["Upload-Concat"] == "partial"
    assert tus.patch(second, b" world", 0).status_code == 204
    # Not yet complete: a final upload is refused and nothing changes.
    early = tus.request("POST", headers={"Upload-Concat": f"final;{first} {second}"})
    assert early.status_code == 400
    assert tus.patch(first, b"hello", 0).status_code == 204
    assert UploadFile.objects.count() == 0  # partials are never files on their own

    relative = urlsplit(second).path
    final = tus.request(
        "POST",
        headers={
            "Upload-Concat": f"final;{first} {relative}",
            "Upload-Metadata": metadata(filename="hw.txt"),
        },
    )
    assert final.status_code == 201
    final_url = final.headers["Location"]
    head = tus.head(final_url)
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == "11"
    assert head.headers["Upload-Concat"] == f"final;{urlsplit(first).path} {relative}"
    file = session_for(final_url).file
    assert file.sha256 == hashlib.sha256(b"hello world").hexdigest()
    assert file.filename == "hw.txt"
    assert UploadFile.objects.count() == 1
    forbidden = tus.patch(final_url, b"x", 11)
    assert forbidden.status_code == 403
    assert forbidden.headers["Tus-Resumable"] == "1.0.0"
    assert forbidden.json()["error"]["code"] == "final_upload"
    assert part_objects(settings) == []


def test_a_partial_may_appear_twice_in_one_final_upload(tus, settings):
    first = tus.create(3, **{"Upload-Concat": "partial"})
    second = tus.create(1, **{"Upload-Concat": "partial"})
    assert tus.patch(first, b"abc", 0).status_code == 204
    assert tus.patch(second, b"-", 0).status_code == 204
    final = tus.request("POST", headers={"Upload-Concat": f"final;{first} {second} {first}"})
    assert final.status_code == 201, final.text
    head = tus.head(final.headers["Location"])
    assert head.headers["Upload-Length"] == head.headers["Upload-Offset"] == "7"
    file = session_for(final.headers["Location"]).file
    assert file.size == 7 and file.sha256 == hashlib.sha256(b"abc-abc").hexdigest()
    assert part_objects(settings) == []


def test_a_consumed_partial_named_again_is_409_partial_consumed(tus):
    first = tus.create(3, **{"Upload-Concat": "partial"})
    assert tus.patch(first, b"abc", 0).status_code == 204
    assert tus.request("POST", headers={"Upload-Concat": f"final;{first}"}).status_code == 201
    again = tus.request("POST", headers={"Upload-Concat": f"final;{first}"})
    assert again.status_code == 409, again.text
    error = again.json()["error"]
    assert error["code"] == "partial_consumed"
    assert error["details"] == {"upload_id": str(session_for(first).id)}
    assert UploadFile.objects.count() == 1
    assert UploadSession.objects.filter(concat="final").count() == 1


@pytest.mark.parametrize("offset", [0, 3, 4])
def test_patch_on_a_final_upload_is_403_whatever_the_offset(tus, offset):
    first = tus.create(3, **{"Upload-Concat": "partial"})
    tus.patch(first, b"abc", 0)
    final = tus.request("POST", headers={"Upload-Concat": f"final;{first}"}).headers["Location"]
    response = tus.patch(final, b"x", offset)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "final_upload"


def test_long_filename_in_metadata_is_cut_to_255(tus):
    url = tus.create(3, **{"Upload-Metadata": metadata(filename="n" * 5000 + ".txt")})
    tus.patch(url, b"abc", 0)
    assert session_for(url).file.filename == "n" * 251 + ".txt"


def test_final_upload_of_someone_elses_partial_is_refused(live_server, tus, intruder):
    other = Tus(live_server.url, _raw_token(intruder))
    theirs = other.create(3, **{"Upload-Concat": "partial"})
    other.patch(theirs, b"abc", 0)
    response = tus.request("POST", headers={"Upload-Concat": f"final;{theirs}"})
    assert response.status_code == 400
    assert UploadFile.objects.count() == 0


def test_body_is_streamed_not_read_into_memory(tus, settings):
    """A PATCH far above DATA_UPLOAD_MAX_MEMORY_SIZE works (request.body would refuse it)."""
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 2621440
    data = os.urandom(3 * 1024 * 1024 + 17)
    url = tus.create(len(data))
    response = tus.patch(url, data, 0)
    assert response.status_code == 204
    assert session_for(url).file.sha256 == hashlib.sha256(data).hexdigest()


def test_method_not_allowed(tus):
    response = tus.request("GET")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    url = tus.create(3)
    assert tus.request("POST", url).status_code == 405


def test_finalisation_hashes_the_parts_when_another_process_took_earlier_patches(tus):
    """The in-process running hash is a shortcut; without it the parts are read back."""
    from portal.services.tus.running_hashes import running_hashes

    url = tus.create(10)
    assert tus.patch(url, b"01234", 0).status_code == 204
    running_hashes.clear()  # as if another process had taken that PATCH
    assert tus.patch(url, b"56789", 5).status_code == 204
    assert session_for(url).file.sha256 == hashlib.sha256(b"0123456789").hexdigest()


def test_browser_session_needs_the_csrf_token(live_server, owner):
    """The UI uses the login session on the same endpoint; CSRF applies."""
    from django.conf import settings as django_settings
    from django.test import Client

    browser = Client()
    browser.force_login(owner)
    cookies = {
        django_settings.SESSION_COOKIE_NAME: browser.cookies[
            django_settings.SESSION_COOKIE_NAME
        ].value
    }
    http = httpx.Client(cookies=cookies)
    base = live_server.url + "/api/tus/"
    refused = http.post(base, headers={**TUS, "Upload-Length": "3"})
    assert refused.status_code == 401
    assert UploadSession.objects.count() == 0

    csrf = "a" * 32
    http.cookies.set(django_settings.CSRF_COOKIE_NAME, csrf)
    created = http.post(base, headers={**TUS, "Upload-Length": "3", "X-CSRFToken": csrf})
    assert created.status_code == 201
    assert session_for(created.headers["Location"]).owner == owner


def test_admin_lists_and_shows_upload_sessions(tus, admin_client, settings):
    url = tus.create(10)
    tus.patch(url, b"01234", 0)
    session = session_for(url)
    assert admin_client.get("/admin/portal/uploadsession/").status_code == 200
    page = admin_client.get(f"/admin/portal/uploadsession/{session.id}/change/")
    assert page.status_code == 200
    assert session.parts.get().storage_key.encode() in page.content


def test_empty_upload_is_stored_at_creation(tus):
    url = tus.create(0, **{"Upload-Metadata": metadata(filename="empty.txt")})
    head = tus.head(url)
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == "0"
    assert "Upload-Expires" not in head.headers
    file = session_for(url).file
    assert (file.status, file.size) == (UploadFile.Status.STORED, 0)
    assert file.sha256 == hashlib.sha256(b"").hexdigest()


def test_sweep_removes_objects_no_part_records(tus, settings):
    """A process that died between writing a part and recording it leaves an orphan."""

    from django.core.files.base import ContentFile
    from django.utils import timezone

    from portal.services.tus.expiry import upload_sessions_expire
    from portal.storage import file_storage

    url = tus.create(10)
    tus.patch(url, b"01234", 0)
    session = session_for(url)
    file_storage().save(f"tus/{session.id}/orphan", ContentFile(b"56789"))
    assert len(part_objects(settings)) == 2
    UploadSession.objects.filter(id=session.id).update(expires_at=timezone.now())
    assert upload_sessions_expire().expired == 1
    assert part_objects(settings) == []
    assert not (Path(settings.MEDIA_ROOT) / "tus" / str(session.id)).exists()


def test_bytes_past_the_recorded_offset_are_cut_off(tus, settings):
    """A request that died after writing but before recording leaves junk; it is dropped."""
    url = tus.create(10)
    assert tus.patch(url, b"01234", 0).status_code == 204
    data_file = Path(settings.MEDIA_ROOT) / "tus" / str(session_for(url).id) / "data"
    with data_file.open("ab") as fh:
        fh.write(b"JUNKJUNK")
    assert tus.head(url).headers["Upload-Offset"] == "5"
    assert tus.patch(url, b"56789", 5).status_code == 204
    file = session_for(url).file
    assert file.sha256 == hashlib.sha256(b"0123456789").hexdigest()
    assert (Path(settings.MEDIA_ROOT) / file.storage_key).read_bytes() == b"0123456789"


def test_chunked_body_without_content_length_is_411(tus):
    url = tus.create(10)
    parsed = urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    headers = {**TUS, **tus.auth, **OCTET, "Upload-Offset": "0", "Transfer-Encoding": "chunked"}
    conn.request("PATCH", parsed.path, body=iter([b"01234"]), headers=headers)
    response = conn.getresponse()
    conn.close()
    assert response.status == 411
    assert response.getheader("Tus-Resumable") == "1.0.0"
    assert session_for(url).offset == 0


def _break_file_recording(monkeypatch) -> None:
    """The database goes away after the last PATCH is recorded, as the file is."""
    from django.db import OperationalError

    from portal.services.tus import finalise

    def unreachable(**kwargs):
        raise OperationalError("the database went away")

    monkeypatch.setattr(finalise, "upload_file_record_stored", unreachable)


def test_head_finishes_an_upload_whose_finalisation_broke_off(tus, monkeypatch, settings):
    """The client's retry asks HEAD, learns every byte is in, and stops: HEAD finishes it."""
    url = tus.create(10)
    _break_file_recording(monkeypatch)
    assert tus.patch(url, b"0123456789", 0).status_code == 503
    monkeypatch.undo()
    session = session_for(url)
    assert (session.status, session.offset, session.file) == ("active", 10, None)

    head = tus.head(url)

    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == "10"
    file = session_for(url).file
    assert file.status == "stored"
    assert file.sha256 == hashlib.sha256(b"0123456789").hexdigest()
    assert (Path(settings.MEDIA_ROOT) / file.storage_key).read_bytes() == b"0123456789"
    assert part_objects(settings) == []


def test_the_sweep_finishes_rather_than_expires_a_fully_received_upload(tus, monkeypatch):
    from portal.services.tus.expiry import upload_sessions_expire

    url = tus.create(10)
    _break_file_recording(monkeypatch)
    assert tus.patch(url, b"0123456789", 0).status_code == 503
    monkeypatch.undo()

    upload_sessions_expire(now=timezone.now() + timedelta(days=30))

    session = session_for(url)
    assert session.status == "complete"
    assert session.file.sha256 == hashlib.sha256(b"0123456789").hexdigest()
