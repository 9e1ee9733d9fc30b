"""tus bodies read from the socket (web/raw_body.py) under the production worker.

The PATCHes go over one kept-alive connection, so a body read past (or short
of) its end would make gunicorn misread the next request on it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import database_url_for_tests
from portal.models import UploadFile, UploadSession
from tests.web import WebServer, create_token, doorito_env
from web.gunicorn_worker import DISCARD_UNREAD_BODY_BYTES

pytestmark = pytest.mark.processes

MIB = 1024 * 1024


@pytest.fixture
def web(transactional_db, tmp_path: Path) -> Iterator[tuple[WebServer, str]]:
    env = doorito_env(
        database_url_for_tests(), tmp_path / "media", WEB_CONCURRENCY="1", WEB_THREADS="4"
    )
    server = WebServer(env, tmp_path / "web.log", "-c", "deploy/gunicorn.conf.py")
    try:
        yield server, create_token(env, "raw@example.com")
    finally:
        server.stop()


def _headers(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0", **extra}


def _create(conn: http.client.HTTPConnection, token: str, length: int) -> str:
    conn.request("POST", "/api/tus/", headers=_headers(token, **{"Upload-Length": str(length)}))
    response = conn.getresponse()
    response.read()
    assert response.status == 201
    return response.headers["Location"].split("//", 1)[1].split("/", 1)[1]


def _patch(conn: http.client.HTTPConnection, token: str, path: str, offset: int, body: bytes):
    headers = _headers(
        token,
        **{"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
    )
    conn.request("PATCH", "/" + path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    return response


def _patch_head(path: str, token: str, content_length: int) -> bytes:
    """The head of a PATCH at offset 0, for writing to a raw socket."""
    return (
        f"PATCH /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        "Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
        "Content-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()


def test_patches_of_every_size_on_one_connection_store_the_right_bytes(web):
    server, token = web
    # Within the worker's pre-read, just past a buffer, several buffers.
    sizes = [100, 64 * 1024 - 1, MIB + 3, 5 * MIB + 17, 1]
    data = os.urandom(sum(sizes))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    path = _create(conn, token, len(data))
    offset = 0
    for size in sizes:
        response = _patch(conn, token, path, offset, data[offset : offset + size])
        offset += size
        assert response.status == 204, server.output()
        assert int(response.headers["Upload-Offset"]) == offset
    # The same connection still speaks HTTP: gunicorn found each next request.
    conn.request("HEAD", "/" + path, headers=_headers(token))
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    assert int(response.headers["Upload-Offset"]) == len(data)
    session = UploadSession.objects.get(id=path.rstrip("/").rsplit("/", 1)[1])
    file = UploadFile.objects.get(pk=session.file_id)
    assert file.sha256 == hashlib.sha256(data).hexdigest()
    assert file.size == len(data)


@pytest.mark.parametrize("size", [1000, 64 * 1024 - 1, MIB, 9 * MIB])
def test_a_patch_refused_before_its_body_is_read_leaves_the_connection_usable(web, size):
    """A 409 (wrong offset) is answered before the body is read; gunicorn must
    still skip exactly that body, the part its worker read ahead included
    (taking that part away made it read into the next request: CI, a
    database restart under upload load)."""
    server, token = web
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
    path = _create(conn, token, 10 * MIB)
    response = _patch(conn, token, path, 5, os.urandom(size))
    assert response.status == 409
    conn.request("HEAD", "/" + path, headers=_headers(token))
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    assert response.headers["Upload-Offset"] == "0"


def test_a_refused_upload_keeps_its_kept_alive_connection_for_the_next_request(web):
    """An upload refused before its body is read (here 401; 503 while the
    database restarts) answers on a connection the client can reuse: gunicorn
    alone skipped only 64 KiB of the body and then closed a connection its
    answer had called keep-alive, and the client's next request failed."""
    server, _ = web
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for size in [64 * 1024 * (1 + i % 8) for i in range(24)]:
            refused = client.post(
                "/api/files",
                files={"file": ("a.bin", os.urandom(size), "application/octet-stream")},
                headers={"Authorization": "Bearer dtk_not_a_token"},
            )
            assert refused.status_code == 401
            assert refused.headers["Connection"] == "keep-alive"
        assert client.get("/healthz").status_code == 200


def test_a_refused_body_too_large_to_skip_is_answered_with_connection_close(web):
    server, token = web
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    path = _create(conn, token, 64 * MIB)
    head = _patch_head(path, token, DISCARD_UNREAD_BODY_BYTES + MIB).replace(
        b"Upload-Offset: 0", b"Upload-Offset: 5"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + os.urandom(64 * 1024))
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 409"), answer
    assert b"\r\nConnection: close\r\n" in answer, answer


def test_a_request_pipelined_behind_a_body_is_answered(web):
    server, token = web
    data = os.urandom(3 * MIB)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    path = _create(conn, token, len(data) * 2)
    head = _patch_head(path, token, len(data))
    second = (
        f"HEAD /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        "Tus-Resumable: 1.0.0\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + data + second)
        answers = b""
        while answers.count(b"HTTP/1.1 ") < 2 or not answers.endswith(b"\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk, answers
            answers += chunk
    first, _, rest = answers.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 204"), answers
    assert rest.startswith(b"HTTP/1.1 200"), answers
    assert f"Upload-Offset: {len(data)}".encode() in rest


def test_a_body_cut_off_keeps_the_bytes_that_arrived(web):
    server, token = web
    data = os.urandom(4 * MIB)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    path = _create(conn, token, len(data))
    sent = 2 * MIB + 123
    head = _patch_head(path, token, len(data))
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + data[:sent])
        sock.shutdown(socket.SHUT_WR)
        sock.recv(65536)  # whatever the server says, once it has seen the end
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("HEAD", "/" + path, headers=_headers(token))
    response = conn.getresponse()
    response.read()
    assert int(response.headers["Upload-Offset"]) == sent
    # The rest completes the upload with the right hash.
    assert _patch(conn, token, path, sent, data[sent:]).status == 204
    session = UploadSession.objects.get(id=path.rstrip("/").rsplit("/", 1)[1])
    assert UploadFile.objects.get(pk=session.file_id).sha256 == hashlib.sha256(data).hexdigest()
