"""A final upload asked for again: the same upload, never a second file or a dead end.

A browser that reloads (or loses its connection) while its final
concatenation ``POST`` is in flight asks again with the same partial uploads
once it is back. The server may have made the file meanwhile; the answer
must be that file's upload, not ``409 partial_consumed`` for ever.
"""

from __future__ import annotations

import hashlib

import pytest

from api.tests.tus_helpers import Tus, metadata, part_objects, session_for
from portal.models import UploadFile, UploadSession

pytestmark = pytest.mark.django_db(transaction=True)


def partials(tus: Tus, *pieces: bytes) -> list[str]:
    """Complete partial uploads holding ``pieces``; their URLs."""
    urls = []
    for piece in pieces:
        url = tus.create(len(piece), **{"Upload-Concat": "partial"})
        assert tus.patch(url, piece, 0).status_code == 204
        urls.append(url)
    return urls


def final(tus: Tus, urls: list[str], **headers: str):
    return tus.request("POST", headers={"Upload-Concat": "final;" + " ".join(urls), **headers})


def test_the_same_partials_again_answer_with_the_same_final_upload(tus, settings):
    urls = partials(tus, b"hello ", b"world")
    first = final(tus, urls, **{"Upload-Metadata": metadata(filename="hw.txt")})
    assert first.status_code == 201, first.text

    again = final(tus, urls, **{"Upload-Metadata": metadata(filename="hw.txt")})

    assert again.status_code == 201, again.text
    assert again.headers["Location"] == first.headers["Location"]
    head = tus.head(again.headers["Location"])
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == "11"
    file = UploadFile.objects.get()
    assert file.sha256 == hashlib.sha256(b"hello world").hexdigest()
    assert session_for(first.headers["Location"]).file == file
    assert UploadSession.objects.filter(concat="final").count() == 1
    assert part_objects(settings) == []


def test_a_repeat_with_relative_urls_is_the_same_request(tus):
    """Absolute or path URLs name the same partials, so they are the same final upload."""
    from urllib.parse import urlsplit

    urls = partials(tus, b"abc", b"def")
    first = final(tus, urls)
    again = final(tus, [urlsplit(u).path for u in urls])
    assert again.status_code == 201, again.text
    assert again.headers["Location"] == first.headers["Location"]
    assert UploadFile.objects.count() == 1


def test_a_consumed_partial_in_another_final_upload_is_409_partial_consumed(tus):
    first, second = partials(tus, b"abc", b"def")
    assert final(tus, [first]).status_code == 201
    for other in ([first, second], [second, first], [first, first]):
        response = final(tus, other)
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert error["code"] == "partial_consumed"
        assert error["details"] == {"upload_id": str(session_for(first).id)}
    assert UploadFile.objects.count() == 1
    assert UploadSession.objects.filter(concat="final").count() == 1


def test_another_users_repeat_is_not_answered_with_the_owners_upload(tus, live_server, intruder):
    from api.tests.tus_helpers import raw_token

    urls = partials(tus, b"abc")
    assert final(tus, urls).status_code == 201
    response = final(Tus(live_server.url, raw_token(intruder)), urls)
    assert response.status_code == 400, response.text  # not their partial uploads
    assert "Location" not in response.headers


def test_a_refused_final_upload_asked_again_is_refused_again(tus, settings):
    settings.FILE_UPLOAD_ALLOWED_TYPES = ["image/png"]
    urls = partials(tus, b"#!/bin/sh\n", b"ls\n")
    headers = {"Upload-Metadata": metadata(filename="run.sh")}
    assert final(tus, urls, **headers).status_code == 415

    again = final(tus, urls, **headers)

    assert again.status_code == 410, again.text
    error = again.json()["error"]
    assert error["code"] == "upload_failed"
    refused = UploadSession.objects.get(concat="final")
    assert error["details"] == {"upload_id": str(refused.id)}
    assert refused.error_message in error["message"]
    assert not UploadFile.objects.filter(status=UploadFile.Status.STORED).exists()
    assert UploadSession.objects.filter(concat="final").count() == 1


def test_a_final_upload_whose_finalisation_broke_off_is_finished_by_the_repeat(
    tus, monkeypatch, settings
):
    """A database outage while the file was recorded: the repeat finishes that final upload."""
    from django.db import OperationalError

    from portal.services.tus import finalise

    urls = partials(tus, b"hello ", b"world")

    def unreachable(**kwargs):
        raise OperationalError("the database went away")

    monkeypatch.setattr(finalise, "upload_file_record_stored", unreachable)
    assert final(tus, urls).status_code == 503
    monkeypatch.undo()
    broken = UploadSession.objects.get(concat="final")
    assert broken.status == "active"

    again = final(tus, urls)

    assert again.status_code == 201, again.text
    assert session_for(again.headers["Location"]).id == broken.id
    file = UploadFile.objects.get()
    assert file.sha256 == hashlib.sha256(b"hello world").hexdigest()
    assert UploadSession.objects.filter(concat="final").count() == 1
    assert part_objects(settings) == []
