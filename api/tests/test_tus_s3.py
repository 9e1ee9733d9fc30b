"""tus into S3 (moto's real server): each byte is written to S3 once, as a part of the final object.

The upload is the final object's S3 multipart upload; these tests look at the
bucket from outside (objects, pending multipart uploads, the bytes PUT) after
uploads in large, ragged and small PATCHes, cut-off bodies, a crash between a
part's upload and its record, refusals and expiry.
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from api.tests.tus_helpers import Tus, metadata, session_for
from portal.models import UploadFile, UploadPart, UploadSession
from portal.services.tus import append
from portal.services.tus.append import upload_session_append
from portal.services.tus.expiry import upload_sessions_expire
from portal.services.tus.parts import S3_MIN_PART_SIZE
from portal.tests.streams import BytesStream
from tests.fixtures.storage import StorageProbe

pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1024 * 1024
KIB = 1024


@pytest.fixture
def s3(s3_bucket, moto_endpoint) -> StorageProbe:
    return StorageProbe("s3", endpoint=moto_endpoint, bucket=s3_bucket)


def _upload(tus: Tus, data: bytes, sizes: list[int], **headers) -> str:
    url = tus.create(len(data), **{"Upload-Metadata": metadata(filename="data.bin"), **headers})
    offset = 0
    for size in sizes:
        response = tus.patch(url, data[offset : offset + size], offset)
        assert response.status_code == 204, response.text
        offset += size
    assert offset == len(data)
    return url


def _plan(total: int, chunk: int) -> list[int]:
    return [min(chunk, total - start) for start in range(0, total, chunk)]


def _assert_one_object(s3: StorageProbe, url: str, data: bytes) -> UploadFile:
    session = session_for(url)
    assert session.status == UploadSession.Status.COMPLETE
    file = session.file
    assert file is not None
    expected = hashlib.sha256(data).hexdigest()
    assert file.status == UploadFile.Status.STORED
    assert (file.size, file.sha256) == (len(data), expected)
    assert s3.keys() == {file.storage_key}
    assert hashlib.sha256(s3.read(file.storage_key)).hexdigest() == expected
    assert s3.pending_multipart_uploads() == 0
    assert not UploadPart.objects.exists()
    return file


@pytest.mark.parametrize(
    ("size", "chunk"),
    [
        (3 * 8 * MIB + 12345, 8 * MIB),  # tuspy's default in the bench
        (3 * 6 * MIB + 777, 6 * MIB),  # parts of 6 MiB and a ragged last one
        (5 * MIB + 300 * KIB, 64 * KIB),  # small PATCHes: waiting objects, then a part
    ],
    ids=["8MiB", "6MiB-ragged", "64KiB"],
)
def test_upload_in_patches_ends_as_one_object(tus, s3, moto_server, size, chunk):
    data = os.urandom(size)
    before = moto_server.put_bytes[s3.bucket]
    url = _upload(tus, data, _plan(size, chunk))

    _assert_one_object(s3, url, data)
    written = moto_server.put_bytes[s3.bucket] - before
    if chunk >= S3_MIN_PART_SIZE:
        # Every PATCH is a part of the final object: each byte PUT once.
        assert written == size
    else:
        # Small PATCHes wait in small objects, then go up in a part: at most
        # twice (a PATCH that fills or ends a part goes straight into it).
        assert size < written <= 2 * size


def test_patch_cut_off_mid_body_resumes(owner, s3):
    """What arrived of a cut-off body is kept (a part if it can be, else a small object)."""
    data = os.urandom(20 * MIB + 5)
    session = UploadSession.objects.get(id=_create(owner, len(data)))
    # 8 MiB announced, 6 MiB arrive: a part of 6 MiB.
    _append(owner, session, data, 0, announced=8 * MIB, arrives=6 * MIB)
    # 8 MiB announced, 1 MiB arrives: too small for a part, kept in an object.
    _append(owner, session, data, 6 * MIB, announced=8 * MIB, arrives=MIB)
    session.refresh_from_db()
    assert session.offset == 7 * MIB
    waiting = s3.keys()
    assert len([k for k in waiting if k.startswith("tus/")]) == 1
    # The rest in one PATCH: the waiting MiB and the rest form the last part.
    _append(owner, session, data, 7 * MIB, announced=len(data) - 7 * MIB)

    _assert_one_object(s3, f"/api/tus/{session.id}", data)


class _Crash(BaseException):
    """The process dies: nothing after this point runs (no clean-up either)."""


def test_retry_after_a_crash_between_part_upload_and_record(owner, s3, monkeypatch):
    data = os.urandom(30 * MIB)
    session = UploadSession.objects.get(id=_create(owner, len(data)))
    record = append._record_statement

    def crash(*args, **kwargs):
        raise _Crash

    monkeypatch.setattr(append, "_record_statement", crash)
    # Parts 1 (16 MiB) and a 4 MiB leftover object went up, but nothing was recorded.
    with pytest.raises(_Crash):
        _append(owner, session, os.urandom(20 * MIB), 0, announced=20 * MIB)
    monkeypatch.setattr(append, "_record_statement", record)
    session.refresh_from_db()
    assert session.offset == 0

    # The client resumes from offset 0 with other PATCH sizes: part 1 is
    # overwritten; the crash's leftover object is never used.
    _append(owner, session, data, 0, announced=6 * MIB)
    _append(owner, session, data, 6 * MIB, announced=len(data) - 6 * MIB)

    _assert_one_object(s3, f"/api/tus/{session.id}", data)


def test_refused_type_aborts_the_multipart_upload_and_keeps_nothing(tus, s3, settings):
    settings.FILE_UPLOAD_ALLOWED_TYPES = ["image/png"]
    data = b"#!/bin/sh\n" + os.urandom(6 * MIB)
    url = tus.create(len(data), **{"Upload-Metadata": metadata(filename="run.sh")})
    assert tus.patch(url, data[: 6 * MIB], 0).status_code == 204
    assert session_for(url).s3_upload_id
    assert s3.pending_multipart_uploads() == 1

    response = tus.patch(url, data[6 * MIB :], 6 * MIB)

    assert response.status_code == 415, response.text
    session = session_for(url)
    assert session.status == UploadSession.Status.FAILED
    assert session.file.status == UploadFile.Status.FAILED
    assert s3.keys() == set()
    assert s3.pending_multipart_uploads() == 0


def test_expired_session_has_its_multipart_upload_aborted(tus, s3):
    data = os.urandom(8 * MIB)
    url = tus.create(len(data) + 3 * MIB)
    assert tus.patch(url, data, 0).status_code == 204
    assert tus.patch(url, os.urandom(MIB), len(data)).status_code == 204
    assert s3.pending_multipart_uploads() == 1
    assert len(s3.keys()) == 1  # the MiB waiting for a part
    UploadSession.objects.filter(id=session_for(url).id).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )

    assert upload_sessions_expire().expired == 1

    assert session_for(url).status == UploadSession.Status.EXPIRED
    assert s3.pending_multipart_uploads() == 0
    assert s3.keys() == set()


def test_terminated_session_has_its_multipart_upload_aborted(tus, s3):
    url = tus.create(20 * MIB)
    assert tus.patch(url, os.urandom(6 * MIB), 0).status_code == 204
    assert tus.request("DELETE", url).status_code == 204
    assert s3.pending_multipart_uploads() == 0
    assert s3.keys() == set()


def test_deferred_length_ends_with_bytes_waiting_in_an_object(tus, s3):
    """The length comes with the last PATCH: its small leftover becomes the last part then."""
    data = os.urandom(6 * MIB + 99)
    url = tus.create(None, **{"Upload-Defer-Length": "1"})
    assert tus.patch(url, data[: 6 * MIB], 0).status_code == 204
    last = tus.patch(url, data[6 * MIB :], 6 * MIB, **{"Upload-Length": str(len(data))})
    assert last.status_code == 204, last.text
    _assert_one_object(s3, url, data)


def test_concatenation_of_partial_uploads_on_s3(tus, s3):
    """Partial uploads are finished as objects; the final upload copies them into one."""
    first, second = os.urandom(6 * MIB + 1), os.urandom(100 * KIB)
    urls = [
        _upload(tus, part, _plan(len(part), 4 * MIB), **{"Upload-Concat": "partial"})
        for part in (first, second)
    ]
    assert s3.pending_multipart_uploads() == 0
    final = tus.request(
        "POST",
        headers={
            "Upload-Concat": "final;" + " ".join(urlsplit(u).path for u in urls),
            "Upload-Metadata": metadata(filename="joined.bin"),
        },
    )
    assert final.status_code == 201, final.text
    _assert_one_object(s3, final.headers["Location"], first + second)


# --- helpers calling the service directly (to cut bodies off and crash) ----------------


def _create(owner, length: int):
    from portal.services.tus.sessions import upload_session_create
    from portal.services.tus.values import UploadMetadata

    return upload_session_create(owner=owner, length=length, metadata=UploadMetadata()).id


def _append(owner, session, data, offset, *, announced, arrives=None):
    body = data[offset : offset + (announced if arrives is None else arrives)]
    return upload_session_append(
        owner=owner,
        upload_id=session.id,
        offset=offset,
        stream=BytesStream(body),
        content_length=announced,
    )


def test_upload_begun_as_one_object_per_patch_finishes_that_way(owner, s3):
    """An upload in flight when this version was deployed keeps its objects and finishes."""
    from portal.services.tus.parts import ObjectPartStore, S3PartStore

    data = os.urandom(7 * MIB)
    session = UploadSession.objects.get(id=_create(owner, len(data)))
    S3PartStore._store, real = ObjectPartStore._store, S3PartStore._store
    try:
        _append(owner, session, data, 0, announced=6 * MIB)
    finally:
        S3PartStore._store = real
    session.refresh_from_db()
    assert session.offset == 6 * MIB and not session.s3_upload_id

    _append(owner, session, data, 6 * MIB, announced=MIB)

    _assert_one_object(s3, f"/api/tus/{session.id}", data)


def test_patch_failing_its_checksum_leaves_nothing_the_retry_trips_over(tus, s3):
    """Its part went up but was never recorded: the retry's part of the same number replaces it."""
    import base64

    data = os.urandom(6 * MIB + 10)
    url = tus.create(len(data))
    wrong = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()
    refused = tus.patch(url, data[: 6 * MIB], 0, **{"Upload-Checksum": f"sha256 {wrong}"})
    assert refused.status_code == 460, refused.text
    assert session_for(url).offset == 0

    right = base64.b64encode(hashlib.sha256(data[: 6 * MIB]).digest()).decode()
    resent = tus.patch(url, data[: 6 * MIB], 0, **{"Upload-Checksum": f"sha256 {right}"})
    assert resent.status_code == 204, resent.text
    assert tus.patch(url, data[6 * MIB :], 6 * MIB).status_code == 204

    _assert_one_object(s3, url, data)
