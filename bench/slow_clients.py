"""Slow clients against the production web command.

Starts the documented production command (``gunicorn -c
deploy/gunicorn.conf.py boot.wsgi``, ``DJANGO_CONFIGURATION=Production``) on
127.0.0.1 against a private PostgreSQL cluster (so 100+ connections never
touch a shared server), then:

1. **alone**: 20 normal uploaders, each posting 1 MiB files to
   ``POST /api/files`` in a loop;
2. **with slow clients**: 50 clients each holding a tus ``PATCH`` open and
   sending it at 2 KB/s, and the same 20 normal uploaders beside them.

Throughout, a prober requests ``/healthz`` every 20 ms. Prints the normal
uploaders' MB/s with slow clients as a ratio of alone (target >= 0.8), the
``/healthz`` p50/p99/max per phase (target p99 < 100 ms), and the server's
memory (sum of RSS of the master and its workers; should stay flat).

Only loopback traffic; about a minute and a half.

    .venv/bin/python bench/slow_clients.py
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg
from gunicorn_server import manage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.private_cluster import PrivateCluster, free_port  # noqa: E402

NORMAL_UPLOADERS = 20
SLOW_CLIENTS = 50
SLOW_RATE = 2048  # bytes per second per slow client
FILE_SIZE = 1024 * 1024
PHASE_SECONDS = 20
PROBE_EVERY = 0.02
PROBE_TIMEOUT = 5.0

PRODUCTION = ["-c", "deploy/gunicorn.conf.py"]  # as in docs/operations.md


def say(msg: str) -> None:
    print(msg, flush=True)


class Server:
    def __init__(self, env: dict[str, str], log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "gunicorn", *PRODUCTION, "boot.wsgi"]
        cmd += ["--bind", f"127.0.0.1:{self.port}"]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not start; see {log}")

    def rss_mib(self) -> float:
        pids = [self.proc.pid]
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        pids += [int(p) for p in children.read_text().split()]
        total = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except FileNotFoundError:
                pass
        return total / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def probe(url: str, out: str) -> None:
    """``GET /healthz`` every 20 ms until killed; one "time latency" line per probe.

    Runs in its own process: in the bench process it would wait for the GIL
    behind the uploader threads and measure the client, not the server.
    """
    # One client (a new one per request would load CA certificates each time);
    # the server closes every connection, so each probe connects afresh.
    with open(out, "w", buffering=1) as fh, httpx.Client(timeout=PROBE_TIMEOUT) as client:
        while True:
            started = time.perf_counter()
            at = time.time()
            try:
                ok = client.get(url + "/healthz").status_code == 200
            except httpx.HTTPError:
                ok = False
            took = time.perf_counter() - started if ok else PROBE_TIMEOUT
            fh.write(f"{at} {took}\n")
            time.sleep(max(0.0, PROBE_EVERY - (time.perf_counter() - started)))


class ConnectionCounter(threading.Thread):
    """The server's open PostgreSQL connections, sampled every half second."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url.replace("postgres://", "postgresql://")
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stopped.wait(0.5):
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()
                self.samples.append((time.time(), int(row[0]) if row else 0))

    def peak(self, started: float, ended: float) -> int:
        return max((n for at, n in self.samples if started <= at <= ended), default=0)


class Prober:
    def __init__(self, url: str, out: Path):
        self.out = out
        self.proc = subprocess.Popen([sys.executable, __file__, "--probe", url, str(out)])
        self.phases: list[tuple[str, float, float]] = []

    def phase(self, name: str, started: float, ended: float) -> None:
        self.phases.append((name, started, ended))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def summary(self, phase: str) -> str:
        _, started, ended = next(p for p in self.phases if p[0] == phase)
        times = []
        for line in self.out.read_text().splitlines():
            at, took = (float(x) for x in line.split())
            if started <= at <= ended:
                times.append(took * 1000)
        times.sort()
        if not times:
            return "no samples"
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        return (
            f"p50 {statistics.median(times):6.1f} ms  p99 {p99:7.1f} ms  "
            f"max {times[-1]:7.1f} ms  ({len(times)} probes)"
        )


def normal_uploaders(url: str, token: str, seconds: float) -> tuple[float, int, int]:
    """20 clients posting 1 MiB files for ``seconds``; returns (MB/s, files, errors)."""
    data = os.urandom(FILE_SIZE)
    stored = [0] * NORMAL_UPLOADERS
    errors = [0] * NORMAL_UPLOADERS
    deadline = time.monotonic() + seconds

    def run(i: int) -> None:
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client:
            while time.monotonic() < deadline:
                try:
                    r = client.post(
                        "/api/files",
                        files={"file": (f"f{i}.bin", data, "application/octet-stream")},
                    )
                    if r.status_code == 201:
                        stored[i] += 1
                    else:
                        errors[i] += 1
                except httpx.HTTPError:
                    errors[i] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(NORMAL_UPLOADERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    return sum(stored) * FILE_SIZE / elapsed / 1e6, sum(stored), sum(errors)


class SlowClients(threading.Thread):
    """50 tus uploads, each one open PATCH sending 2 KB every second."""

    def __init__(self, url: str, token: str):
        super().__init__(daemon=True)
        self.port = int(url.rsplit(":", 1)[1])
        self.token = token
        self.url = url
        self.socks: list[socket.socket] = []
        self.sent = 0
        self.broken = 0
        self.stopped = threading.Event()
        self.ready = threading.Event()

    def _open(self, client: httpx.Client, i: int) -> socket.socket:
        name = base64.b64encode(f"slow{i}.bin".encode()).decode()
        r = client.post(
            "/api/tus/",
            headers={
                "Tus-Resumable": "1.0.0",
                "Upload-Length": str(FILE_SIZE),
                "Upload-Metadata": f"filename {name}",
            },
        )
        r.raise_for_status()
        path = httpx.URL(r.headers["Location"]).path
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.sendall(
            (
                f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {self.token}\r\nTus-Resumable: 1.0.0\r\n"
                "Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                f"Content-Length: {FILE_SIZE}\r\n\r\n"
            ).encode()
        )
        return sock

    def run(self) -> None:
        with httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        ) as client:
            self.socks = [self._open(client, i) for i in range(SLOW_CLIENTS)]
        self.ready.set()
        chunk = b"s" * SLOW_RATE
        while not self.stopped.wait(1.0):
            for sock in self.socks:
                try:
                    sock.sendall(chunk)
                    self.sent += len(chunk)
                except OSError:
                    self.broken += 1

    def close(self) -> None:
        self.stopped.set()
        self.join(timeout=5)
        for sock in self.socks:
            sock.close()


def main() -> None:
    if sys.argv[1:2] == ["--probe"]:
        probe(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=PHASE_SECONDS)
    args = parser.parse_args()

    cluster = PrivateCluster(dbname="doorito_slowbench", max_connections=400)
    server = None
    logdir = Path(cluster.base) / "logs"
    logdir.mkdir()
    try:
        say(f"private PostgreSQL on port {cluster.port} (max_connections 400)")
        cluster.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "boot.settings",
                "DJANGO_CONFIGURATION": "Production",
                "SECRET_KEY": secrets.token_urlsafe(50),
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "SECURE_SSL_REDIRECT": "false",
                "SECURE_PROXY_SSL_HEADER": "",
                "DATABASE_URL": cluster.url,
                "MEDIA_ROOT": str(cluster.base / "media"),
                "STATIC_ROOT": str(cluster.base / "static"),
                "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "2"),
            }
        )
        manage(env, "migrate", "--noinput")
        manage(env, "create_user", "bench@example.com", "--no-password")
        token = manage(env, "create_token", "bench@example.com", "bench").strip().splitlines()[-1]
        server = Server(env, logdir / "web.log")
        say(
            f"web: gunicorn {' '.join(PRODUCTION)} boot.wsgi "
            f"({os.cpu_count()} cores, WEB_CONCURRENCY={env['WEB_CONCURRENCY']}, "
            f"WEB_THREADS={os.environ.get('WEB_THREADS', 'default')})"
        )

        for _ in range(20):  # every worker past its first request (lazy imports)
            httpx.get(server.url + "/healthz", timeout=10)
        connections = ConnectionCounter(cluster.url)
        connections.start()
        prober = Prober(server.url, logdir / "probes.txt")
        memory = {"start": server.rss_mib()}
        time.sleep(1)
        t0 = time.time()
        time.sleep(3)
        prober.phase("idle", t0, time.time())

        t0 = time.time()
        alone, alone_files, alone_errors = normal_uploaders(server.url, token, args.seconds)
        prober.phase("alone", t0, time.time())
        memory["after alone"] = server.rss_mib()

        slow = SlowClients(server.url, token)
        t0 = time.time()
        slow.start()
        slow.ready.wait(timeout=60)
        time.sleep(3)
        prober.phase("slow clients only", t0, time.time())
        memory["slow clients connected"] = server.rss_mib()
        t0 = time.time()
        loaded, loaded_files, loaded_errors = normal_uploaders(server.url, token, args.seconds)
        prober.phase("with slow clients", t0, time.time())
        memory["after with slow clients"] = server.rss_mib()
        prober.stop()
        slow.close()

        say("")
        say(
            f"normal uploaders ({NORMAL_UPLOADERS} x 1 MiB files, POST /api/files, "
            f"{args.seconds:.0f} s each)"
        )
        say(f"  alone              {alone:7.1f} MB/s  {alone_files} files, {alone_errors} errors")
        say(
            f"  with {SLOW_CLIENTS} slow tus   {loaded:7.1f} MB/s  {loaded_files} files, "
            f"{loaded_errors} errors"
        )
        ratio = loaded / alone if alone else 0.0
        say(f"  ratio              {ratio:7.2f}x  (target >= 0.8)")
        say(
            f"slow clients: {SLOW_CLIENTS} PATCHes at {SLOW_RATE} B/s, "
            f"{slow.sent / 1e6:.1f} MB sent, {slow.broken} send errors"
        )
        say("/healthz (every 20 ms; failures count as 5 s)")
        for phase in ("idle", "alone", "slow clients only", "with slow clients"):
            say(f"  {phase:20} {prober.summary(phase)}")
        say("server's PostgreSQL connections, peak")
        for name, started, ended in prober.phases:
            say(f"  {name:20} {connections.peak(started, ended):4d}")
        connections.stopped.set()
        say("server memory (RSS of master + workers)")
        for name, value in memory.items():
            say(f"  {name:24} {value:7.1f} MiB")
    finally:
        if server is not None:
            server.stop()
        cluster.destroy()


if __name__ == "__main__":
    main()
