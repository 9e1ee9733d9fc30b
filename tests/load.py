"""Load against a running Doorito: uploaders, sign-in bursts, slow and silent sockets.

Shared by the tests that hold the production web command to its budgets
(``tests/test_connection_budget.py``) and by ``bench/slow_clients.py``,
which runs the same scenarios longer and prints figures.
"""

from __future__ import annotations

import base64
import contextlib
import re
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg


def status_class(status: int) -> str:
    return f"{status // 100}xx"


class Uploaders:
    """``n`` clients uploading ``size``-byte files in a loop until ``stop()``.

    Half post simple uploads (``POST /api/files``), half send tus uploads
    (create, one PATCH), so both kinds of request hold the server at once.
    ``outcomes`` counts answers by class ("2xx", "5xx", …) and "error" for
    a request that got no answer.
    """

    def __init__(self, url: str, token: str, *, n: int, size: int) -> None:
        self.url = url
        self.token = token
        self.data = bytes(range(256)) * (size // 256)
        self.outcomes: Counter[str] = Counter()
        self.stored = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i, i % 2 == 1), daemon=True) for i in range(n)
        ]

    def start(self) -> Uploaders:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        for thread in self._threads:
            thread.join(timeout=120)
        self.elapsed = time.monotonic() - self.started

    def mb_per_s(self) -> float:
        return self.stored * len(self.data) / self.elapsed / 1e6

    def _count(self, response: httpx.Response | None) -> None:
        with self._lock:
            self.outcomes["error" if response is None else status_class(response.status_code)] += 1

    def _run(self, i: int, tus: bool) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=60) as client:
            while not self._stopped.is_set():
                try:
                    ok = self._tus(client, i) if tus else self._simple(client, i)
                except httpx.HTTPError:
                    self._count(None)
                    continue
                if ok:
                    with self._lock:
                        self.stored += 1

    def _simple(self, client: httpx.Client, i: int) -> bool:
        r = client.post("/api/files", files={"file": (f"s{i}.bin", self.data, "text/plain")})
        self._count(r)
        return r.status_code == 201

    def _tus(self, client: httpx.Client, i: int) -> bool:
        name = base64.b64encode(f"t{i}.bin".encode()).decode()
        tus = {"Tus-Resumable": "1.0.0"}
        r = client.post(
            "/api/tus/",
            headers={
                **tus,
                "Upload-Length": str(len(self.data)),
                "Upload-Metadata": f"filename {name}",
            },
        )
        self._count(r)
        if r.status_code != 201:
            return False
        r = client.patch(
            httpx.URL(r.headers["Location"]).path,
            content=self.data,
            headers={
                **tus,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        self._count(r)
        return r.status_code == 204


def sign_in_burst(url: str, email: str, password: str, *, n: int) -> Counter[str]:
    """``n`` sign-ins at once through the portal's form; answers by class."""

    def one(_: int) -> str:
        with httpx.Client(base_url=url, timeout=60) as client:
            try:
                page = client.get("/login/")
                match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
                if page.status_code != 200 or not match:
                    return status_class(page.status_code)
                r = client.post(
                    "/login/",
                    data={
                        "csrfmiddlewaretoken": match.group(1),
                        "username": email,
                        "password": password,
                    },
                    headers={"Referer": url + "/login/"},
                )
                return status_class(r.status_code)
            except httpx.HTTPError:
                return "error"

    with ThreadPoolExecutor(max_workers=n) as pool:
        return Counter(pool.map(one, range(n)))


class SlowSockets(threading.Thread):
    """``n`` sockets that never finish: slowloris heads or slow bodies.

    Each sends ``opening`` at once and then ``drip`` every ``every`` seconds.
    The server may close them (a head deadline); ``closed`` counts those,
    and with ``reopen`` each is opened again at once, as an attacker keeping
    ``n`` open would.
    """

    def __init__(
        self, port: int, openings: list[bytes], drip: bytes, *, every: float, reopen: bool = False
    ) -> None:
        super().__init__(daemon=True)
        self.reopen = reopen
        self.port = port
        self.openings = openings
        self.drip = drip
        self.every = every
        self.socks: list[socket.socket] = []
        self.closed = 0
        self.sent = 0
        self.ready = threading.Event()
        self._stopped = threading.Event()

    def _open(self, opening: bytes) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.sendall(opening)
        return sock

    def run(self) -> None:
        self.socks = [self._open(opening) for opening in self.openings]
        self.ready.set()
        while not self._stopped.wait(self.every):
            for i, sock in enumerate(self.socks):
                if sock.fileno() < 0:
                    continue
                try:
                    sock.sendall(self.drip)
                    self.sent += len(self.drip)
                    continue
                except OSError:
                    self.closed += 1
                    sock.close()
                if self.reopen:
                    with contextlib.suppress(OSError):
                        self.socks[i] = self._open(self.openings[i])

    def close(self) -> None:
        self._stopped.set()
        self.join(timeout=10)
        for sock in self.socks:
            sock.close()


def slowloris(port: int, n: int) -> SlowSockets:
    """``GET /healthz`` heads that get one more header line every 5 s."""
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    return SlowSockets(port, [head] * n, b"X-Slow: 1\r\n", every=5.0, reopen=True)


def slow_tus_bodies(url: str, token: str, n: int, *, length: int = 1024 * 1024) -> SlowSockets:
    """``n`` tus uploads, each one open ``PATCH`` sending 2 KB a second."""
    port = int(url.rsplit(":", 1)[1])
    openings = []
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        for i in range(n):
            name = base64.b64encode(f"slow{i}.bin".encode()).decode()
            r = client.post(
                "/api/tus/",
                headers={
                    "Tus-Resumable": "1.0.0",
                    "Upload-Length": str(length),
                    "Upload-Metadata": f"filename {name}",
                },
            )
            r.raise_for_status()
            path = httpx.URL(r.headers["Location"]).path
            openings.append(
                (
                    f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
                    "Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                    f"Content-Length: {length}\r\n\r\n"
                ).encode()
            )
    return SlowSockets(port, openings, b"s" * 2048, every=1.0)


class ConnectionCounter(threading.Thread):
    """Client connections on the whole PostgreSQL server, sampled every ``every`` s."""

    def __init__(self, dsn: str, *, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn.replace("postgres://", "postgresql://", 1)
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self._stopped = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stopped.wait(self.every):
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
                ).fetchone()
                self.samples.append((time.time(), int(row[0]) if row else 0))

    def now(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def peak(self, started: float = 0.0, ended: float = float("inf")) -> int:
        return max((n for at, n in self.samples if started <= at <= ended), default=0)

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=5)
