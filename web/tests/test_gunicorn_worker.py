"""The production web command against slow and silent clients (web/gunicorn_worker.py).

gunicorn runs with ``deploy/gunicorn.conf.py`` and few threads, so that a
handful of sockets would take every thread if heads or small bodies were
read by threads (stock ``gthread``: 85 slowloris sockets took the server
down).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import database_url_for_tests
from tests.web import WebServer, create_token, doorito_env
from web.gunicorn_worker import PREREAD_BODY_BYTES, body_to_preread

THREADS = 2
HEADER_TIMEOUT = 2


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"POST / HTTP/1.1\r\nContent-Length: 12", 12),
        (b"POST / HTTP/1.1\r\ncontent-length:12 ", 12),
        (b"GET / HTTP/1.1\r\nHost: x", 0),
        (f"POST / HTTP/1.1\r\nContent-Length: {PREREAD_BODY_BYTES + 1}".encode(), 0),
        (b"POST / HTTP/1.1\r\nContent-Length: 12\r\nExpect: 100-continue", 0),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked", 0),
        (b"POST / HTTP/1.1\r\nContent-Length: 12\r\nContent-Length: 13", 0),
        (b"POST / HTTP/1.1\r\nX-Content-Length: 12", 0),
    ],
)
def test_body_to_preread(head: bytes, expected: int) -> None:
    assert body_to_preread(head) == expected


@pytest.fixture
def server(transactional_db, tmp_path: Path) -> Iterator[WebServer]:
    env = doorito_env(
        database_url_for_tests(),
        tmp_path / "media",
        WEB_CONCURRENCY="1",
        WEB_THREADS=str(THREADS),
        WEB_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
    )
    web = WebServer(env, tmp_path / "web.log", "-c", "deploy/gunicorn.conf.py")
    web.env = env  # type: ignore[attr-defined]
    try:
        yield web
    finally:
        web.stop()


def _connect(web: WebServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", web.port), timeout=10)
    return sock


def _trickle(socks: list[socket.socket], stop: threading.Event, line: bytes) -> None:
    """Send ``line`` on every socket every half second, as slowloris does."""
    while not stop.wait(0.5):
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.sendall(line)


def _healthz_times(web: WebServer, n: int) -> list[float]:
    times = []
    with httpx.Client(timeout=5) as client:
        for _ in range(n):
            started = time.perf_counter()
            try:
                ok = client.get(web.url + "/healthz").status_code == 200
            except httpx.HTTPError:
                ok = False
            times.append(time.perf_counter() - started if ok else 99.0)
    return times


def _healthz_times_while_trickling(web: WebServer, opening: bytes, drip: bytes) -> list[float]:
    """/healthz answer times while ten sockets per thread send ``drip`` every half second."""
    socks = [_connect(web) for _ in range(10 * THREADS)]
    for sock in socks:
        sock.sendall(opening)
    stop = threading.Event()
    trickler = threading.Thread(target=_trickle, args=(socks, stop, drip))
    trickler.start()
    try:
        time.sleep(0.5)
        return _healthz_times(web, 10)
    finally:
        stop.set()
        trickler.join()
        for sock in socks:
            sock.close()


@pytest.mark.processes
def test_slow_heads_hold_no_thread(server: WebServer) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    times = _healthz_times_while_trickling(server, head, b"X-a: b\r\n")
    assert max(times) < 1.0, times


@pytest.mark.processes
def test_slow_small_bodies_hold_no_thread(server: WebServer) -> None:
    body = json.dumps({"metadata": {"note": "x" * 200}}).encode()
    opening = (
        b"POST /api/batches HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:1]
    )
    times = _healthz_times_while_trickling(server, opening, b" ")
    assert max(times) < 1.0, times


@pytest.mark.processes
def test_an_unfinished_head_is_closed_with_408_after_the_header_timeout(server: WebServer) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    started = time.monotonic()
    answer = b""
    while chunk := sock.recv(4096):  # the server closes it
        answer += chunk
    took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert HEADER_TIMEOUT - 0.5 <= took <= HEADER_TIMEOUT + 2.5, took


@pytest.mark.processes
def test_a_request_sent_in_pieces_and_kept_alive_is_served(server: WebServer) -> None:
    token = create_token(server.env, "pieces@example.com")  # type: ignore[attr-defined]
    body = json.dumps({"metadata": {"source": "pieces"}}).encode()
    request = (
        b"POST /api/batches HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    sock = _connect(server)
    for i in range(0, len(request), 7):
        sock.sendall(request[i : i + 7])
        time.sleep(0.005)
    answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 201"), answer
    assert b'"source": "pieces"' in answer or b'"source":"pieces"' in answer
    # The same connection serves the next request (keep-alive).
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    sock.close()
