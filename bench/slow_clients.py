"""Slow and silent clients against the production web command.

Starts the documented production command (``gunicorn -c
deploy/gunicorn.conf.py boot.wsgi``, ``DJANGO_CONFIGURATION=Production``) on
127.0.0.1 against a private PostgreSQL cluster with the default
``max_connections`` (100), then runs these phases one after another:

1. **alone**: 20 normal uploaders (half ``POST /api/files``, half tus
   create + PATCH), 1 MiB files in a loop;
2. **slowloris**: 150 sockets sending ``GET /healthz`` heads one header line
   every 5 s (reopened at once when the server closes one), then the same
   20 uploaders beside them;
3. **slow bodies**: 150 tus ``PATCH``es sending 2 KB a second, the 150
   slowloris sockets still open, then the 20 uploaders beside them all.

Throughout, a prober requests ``/healthz`` every 20 ms. Prints the
uploaders' MB/s per phase as a ratio of alone (target >= 0.8) and their
5xx count (target 0), the ``/healthz`` p50/p99/max per phase (target p99
<= 2 s), the sockets the server closed for an unfinished head, the server's
PostgreSQL connections at their peak (target <= 80 with everything) and
its memory (sum of RSS of the master and its workers).

Only loopback traffic; about two and a half minutes.

    .venv/bin/python bench/slow_clients.py
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from gunicorn_server import ProductionServer, manage, production_env

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.private_cluster import PrivateCluster  # noqa: E402
from tests.load import (  # noqa: E402
    ConnectionCounter,
    SlowSockets,
    Uploaders,
    slow_tus_bodies,
    slowloris,
)

NORMAL_UPLOADERS = 20
SLOW_CLIENTS = 150
FILE_SIZE = 1024 * 1024
PHASE_SECONDS = 20
PROBE_EVERY = 0.02
PROBE_TIMEOUT = 5.0

PRODUCTION = ["-c", "deploy/gunicorn.conf.py"]  # as in docs/operations.md


def say(msg: str) -> None:
    print(msg, flush=True)


class Server(ProductionServer):
    def rss_mib(self) -> float:
        """Resident memory of the master and its workers together."""
        total = 0
        for pid in [self.proc.pid, *self.worker_pids()]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except FileNotFoundError:
                pass
        return total / 1024


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


def uploaders(url: str, token: str, seconds: float) -> Uploaders:
    load = Uploaders(url, token, n=NORMAL_UPLOADERS, size=FILE_SIZE).start()
    time.sleep(seconds)
    load.stop()
    return load


def main() -> None:
    if sys.argv[1:2] == ["--probe"]:
        probe(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=PHASE_SECONDS)
    args = parser.parse_args()

    cluster = PrivateCluster(dbname="doorito_slowbench", max_connections=100)
    server = None
    logdir = Path(cluster.base) / "logs"
    logdir.mkdir()
    attacks = []
    try:
        say(f"private PostgreSQL on port {cluster.port} (max_connections 100)")
        cluster.start()
        env = production_env(
            cluster.url,
            cluster.base / "media",
            SECRET_KEY=secrets.token_urlsafe(50),
            STATIC_ROOT=str(cluster.base / "static"),
        )
        manage(env, "migrate", "--noinput")
        manage(env, "create_user", "bench@example.com", "--no-password")
        token = manage(env, "create_token", "bench@example.com", "bench").strip().splitlines()[-1]
        server = Server(env, logdir / "web.log")
        say(
            f"web: gunicorn {' '.join(PRODUCTION)} boot.wsgi ({os.cpu_count()} cores, "
            f"WEB_CONCURRENCY={os.environ.get('WEB_CONCURRENCY', 'default')}, "
            f"WEB_THREADS={os.environ.get('WEB_THREADS', 'default')})"
        )

        for _ in range(20):  # every worker past its first request (lazy imports)
            httpx.get(server.url + "/healthz", timeout=10)
        connections = ConnectionCounter(cluster.url, every=0.5)
        connections.start()
        prober = Prober(server.url, logdir / "probes.txt")
        memory = {"start": server.rss_mib()}
        loads: dict[str, Uploaders] = {}
        time.sleep(1)
        t0 = time.time()
        time.sleep(3)
        prober.phase("idle", t0, time.time())

        t0 = time.time()
        loads["alone"] = uploaders(server.url, token, args.seconds)
        prober.phase("alone", t0, time.time())
        memory["after alone"] = server.rss_mib()

        def attacked(name: str, attack: SlowSockets, load_name: str) -> None:
            """Open ``attack``'s sockets, then run the uploaders beside them."""
            attacks.append(attack)
            t0 = time.time()
            attack.start()
            attack.ready.wait(timeout=60)
            time.sleep(5)
            prober.phase(name, t0, time.time())
            t0 = time.time()
            loads[load_name] = uploaders(server.url, token, args.seconds)
            prober.phase(f"{name} + uploads", t0, time.time())
            memory[load_name] = server.rss_mib()

        heads = slowloris(server.port, SLOW_CLIENTS)
        attacked("slowloris", heads, "slowloris")
        bodies = slow_tus_bodies(server.url, token, SLOW_CLIENTS)
        attacked("+ slow bodies", bodies, "slowloris + slow bodies")
        prober.stop()
        for attack in attacks:
            attack.close()
        connections.stop()

        say("")
        say(
            f"normal uploaders ({NORMAL_UPLOADERS} x 1 MiB files, half POST /api/files, "
            f"half tus; {args.seconds:.0f} s each)"
        )
        alone = loads["alone"].mb_per_s()
        for name, load in loads.items():
            ratio = load.mb_per_s() / alone if alone else 0.0
            say(
                f"  {name:26} {load.mb_per_s():7.1f} MB/s  {ratio:5.2f}x  "
                f"{load.stored} files  {dict(load.outcomes)}"
            )
        say("  (target: >= 0.8x of alone, no 5xx)")
        say(
            f"slowloris: {SLOW_CLIENTS} heads open, {heads.closed} closed by the server "
            f"(unfinished after WEB_HEADER_TIMEOUT) and reopened"
        )
        say(
            f"slow bodies: {SLOW_CLIENTS} tus PATCHes at 2 KB/s, "
            f"{bodies.sent / 1e6:.1f} MB sent, {bodies.closed} cut off"
        )
        say("/healthz (every 20 ms; failures count as 5 s; target p99 <= 2 s)")
        for name, _, _ in prober.phases:
            say(f"  {name:26} {prober.summary(name)}")
        say("PostgreSQL client connections on the server, peak (target <= 80)")
        for name, started, ended in prober.phases:
            say(f"  {name:26} {connections.peak(started, ended):4d}")
        say("server memory (RSS of master + workers)")
        for name, value in memory.items():
            say(f"  {name:26} {value:7.1f} MiB")
    finally:
        for attack in attacks:
            attack.close()
        if server is not None:
            server.stop()
        cluster.destroy()


if __name__ == "__main__":
    main()
