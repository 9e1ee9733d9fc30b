"""The tus 1.0 endpoint over real HTTP: discovery, authentication, creation, HEAD, PATCH, checksums.

Every status code the protocol names is checked with its headers; state
is checked in the database and in storage after each refused request.
"""

from __future__ import annotations

import base64
import hashlib
from email.utils import parsedate_to_datetime

import httpx
import pytest

from accounts.services.tokens import token_create, token_revoke
from api.tests.tus_helpers import (
    IMF_FIXDATE,
    OCTET,
    Tus,
    metadata,
    part_objects,
    raw_token,
    session_for,
    stored_objects,
)
from portal.models import UploadFile, UploadPart, UploadSession

pytestmark = pytest.mark.django_db(transaction=True)


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
    other = Tus(live_server.url, raw_token(intruder))
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


def test_tus_size_refusals_name_sizes_in_iec_units_and_bytes(tus, settings):
    settings.RESUMABLE_UPLOAD_MAX_SIZE = 5 * 1024**3
    response = tus.request("POST", headers={"Upload-Length": str(5 * 1024**3 + 1)})
    assert response.json()["error"]["message"] == (
        "The upload is 5 GiB (5 368 709 121 bytes); the limit is 5 GiB (5 368 709 120 bytes)."
    )
    url = tus.create(2048)
    over = tus.patch(url, b"x" * 2049, 0)
    assert over.status_code == 413
    assert over.json()["error"]["message"] == (
        "This PATCH would take the upload past 2 KiB (2 048 bytes)."
    )


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
