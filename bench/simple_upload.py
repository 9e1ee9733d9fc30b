"""Simple uploads (API multipart and the portal's form) against a plain copy of the file.

Starts the documented production command (``gunicorn -c
deploy/gunicorn.conf.py boot.wsgi``, ``DJANGO_CONFIGURATION=Production``,
local storage) on 127.0.0.1 against a private PostgreSQL cluster, then, in
interleaved rounds on the same disk:

- **copy + fsync**: ``shutil.copyfile`` of the file, then ``fsync`` (the
  plain copy of ``bench/api_endpoints.py``, which gave issue #22 its 0.17x);
- **copy, cached**: the same without ``fsync``, into the page cache only
  (the uploads do not fsync either; the stricter baseline);
- **sha256 alone**: hashing the file's bytes from memory (the ceiling of any
  upload that hashes, printed for reference);
- **API**: ``POST /api/files`` with a bearer token, one multipart part
  ``file``;
- **form**: ``POST /upload/simple/`` signed in, CSRF token in the form,
  as the portal's upload form sends it without JavaScript.

The client sends the multipart body with ``socket.sendfile`` (the kernel
copies the file into the socket; no Python touches the bytes), so the
figure is the server's, less what loopback TCP costs both sides. A round
times connect -> the whole answer (the file stored, hashed and recorded);
the stored sha256 is checked every time.
Prints median MB/s per step with every round's figure, and each upload's
ratio to each copy as the median of the rounds' ratios (an upload against
the copy of its own round, so that load elsewhere on the machine, which
comes and goes, weighs on both; target >= 0.3x), and the CPU time
the server's workers spent per upload (user + system, from ``/proc``: the
figure other load on the machine moves least).

Then the memory: for each size of ``--rss-mib`` a fresh server (with
``FILE_UPLOAD_MAX_SIZE`` raised to let the large one in) takes one API
upload and one form upload; printed is the largest peak RSS (``VmHWM``) of
its workers against the idle figure, and the ratio largest / smallest
upload (flat = 1.00).

    .venv/bin/python bench/simple_upload.py                    # 45 MiB, 15 rounds; RSS 45, 450 MiB
    .venv/bin/python bench/simple_upload.py --rounds 3 --rss-mib ""   # throughput only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from gunicorn_server import ProductionServer, manage, production_env

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.private_cluster import PrivateCluster  # noqa: E402

MIB = 1024 * 1024
PRODUCTION = ["-c", "deploy/gunicorn.conf.py"]  # as in docs/operations.md
BOUNDARY = "doorito-bench-" + "b" * 24


def say(msg: str) -> None:
    print(msg, flush=True)


def make_file(path: Path, size: int) -> str:
    """Pseudo-random bytes (incompressible, cheap to make) and their sha256."""
    digest = hashlib.sha256()
    block = os.urandom(MIB)
    with path.open("wb") as fh:
        written, i = 0, 0
        while written < size:
            chunk = (i.to_bytes(8, "big") + block[8:])[: size - written]
            fh.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            i += 1
    return digest.hexdigest()


class Server(ProductionServer):
    """The production command, every worker past its first request (lazy imports)."""

    def __init__(self, env: dict[str, str], log: Path):
        super().__init__(env, log)
        for _ in range(10):
            httpx.get(self.url + "/healthz", timeout=10)

    def worker_peaks_mib(self) -> list[float]:
        """``VmHWM`` of each worker: its peak resident set since it started."""
        peaks = []
        for pid in self.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        return peaks

    def cpu_seconds(self) -> float:
        """CPU time (user + system) its workers have used so far."""
        ticks = 0
        for pid in self.worker_pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


def post_multipart(
    port: int, path: str, src: Path, *, headers: dict[str, str], fields: dict[str, str]
) -> Answer:
    """One multipart POST whose file part is sent by the kernel (``sendfile``)."""
    head = b""
    for name, value in fields.items():
        head += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    head += (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{src.name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    length = len(head) + src.stat().st_size + len(tail)
    request = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    request += f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
    request += f"Content-Length: {length}\r\nConnection: close\r\n"
    request += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock, src.open("rb") as fh:
        sock.sendall(request.encode() + head)
        sock.sendfile(fh)
        sock.sendall(tail)
        received = bytearray()
        while data := sock.recv(65536):
            received += data
    seconds = time.perf_counter() - started
    raw_head, _, body = bytes(received).partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    answer_headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        answer_headers[key.strip().lower()] = value.strip()
    return Answer(int(lines[0].split()[1]), answer_headers, body, seconds)


class Portal:
    """A signed-in API caller and a signed-in browser, against one server."""

    def __init__(self, server: Server, env: dict[str, str], dsn: str):
        self.server = server
        self.dsn = dsn.replace("postgres://", "postgresql://", 1)
        code = (
            "from django.conf import settings; from django.test import Client;"
            "from accounts.models import User;"
            "from accounts.services.tokens import token_create;"
            "u = User.objects.get(email='bench@example.com');"
            "c = Client(); c.force_login(u);"
            "n = settings.SESSION_COOKIE_NAME;"
            "print(token_create(user=u, name='bench')[1], n, c.cookies[n].value)"
        )
        token, name, value = manage(env, "shell", "-c", code).split()[-3:]
        self.token = token
        with httpx.Client(base_url=server.url, cookies={name: value}) as client:
            page = client.get("/upload/")
            page.raise_for_status()
            match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            assert match, "no CSRF token on the upload page"
            self.csrf = match.group(1)
            self.cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())

    def api(self, src: Path) -> Answer:
        answer = post_multipart(
            self.server.port,
            "/api/files",
            src,
            headers={"Authorization": f"Bearer {self.token}"},
            fields={},
        )
        assert answer.status == 201, (answer.status, answer.body[:500])
        answer.headers["sha256"] = json.loads(answer.body)["sha256"]
        return answer

    def form(self, src: Path) -> Answer:
        answer = post_multipart(
            self.server.port,
            "/upload/simple/",
            src,
            headers={"Cookie": self.cookie},
            fields={"csrfmiddlewaretoken": self.csrf},
        )
        assert answer.status == 302, (answer.status, answer.body[:500])
        file_id = answer.headers["location"].rstrip("/").rsplit("/", 1)[1]
        answer.headers["sha256"] = self._stored_sha256(file_id)
        return answer

    def _stored_sha256(self, file_id: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn) as conn:
            row = conn.execute(
                "SELECT sha256 FROM portal_uploadfile WHERE id = %s", [file_id]
            ).fetchone()
        return row[0] if row else ""


def plain_copy(src: Path, dst: Path, *, fsync: bool) -> float:
    """``shutil.copyfile`` (in the kernel), then optionally ``fsync`` the copy."""
    started = time.perf_counter()
    shutil.copyfile(src, dst)
    if fsync:
        with dst.open("rb") as fh:
            os.fsync(fh.fileno())
    seconds = time.perf_counter() - started
    dst.unlink()
    return seconds


def sha256_alone(src: Path) -> float:
    """sha256 of the file's bytes already in memory, 1 MiB at a time, on one core.

    Every upload here hashes every byte once and one sha256 cannot be split
    across cores, so ``copy / this`` is the ceiling of the ratio, whatever
    the HTTP stack does.
    """
    data = memoryview(src.read_bytes())
    started = time.perf_counter()
    digest = hashlib.sha256()
    for offset in range(0, len(data), MIB):
        digest.update(data[offset : offset + MIB])
    return time.perf_counter() - started


def warm_page_cache(work: Path, size: int) -> None:
    """Write and delete ``size`` bytes first, so no measurement pays for cold guest memory."""
    scratch = work / "warm.bin"
    block = os.urandom(8 * MIB)
    with scratch.open("wb") as fh:
        for _ in range(max(1, size // len(block))):
            fh.write(block)
    scratch.unlink()


def throughput(args: argparse.Namespace, env: dict[str, str], cluster: PrivateCluster) -> None:
    work = cluster.base / "work"
    work.mkdir()
    media = Path(env["MEDIA_ROOT"])
    src = work / "source.bin"
    size = args.size_mib * MIB
    expected = make_file(src, size)
    warm_page_cache(work, 4 * size)
    server = Server(env, cluster.base / "logs" / "web-throughput.log")
    try:
        portal = Portal(server, env, cluster.url)
        steps = {
            "copy + fsync": lambda: plain_copy(src, work / "copy.bin", fsync=True),
            "copy, cached": lambda: plain_copy(src, work / "copy.bin", fsync=False),
            "sha256 alone": lambda: sha256_alone(src),
            "API": lambda: _checked(portal.api(src), expected),
            "form": lambda: _checked(portal.form(src), expected),
        }
        runs: dict[str, list[float]] = {name: [] for name in steps}
        cpu: dict[str, float] = {"API": 0.0, "form": 0.0}
        for step in steps.values():  # a first pass untimed: caches, pools, imports
            step()
            shutil.rmtree(media / "uploads", ignore_errors=True)
        order = list(steps)
        for i in range(args.rounds):
            k = i % len(order)
            for name in order[k:] + order[:k]:  # each step first in turn
                before = server.cpu_seconds()
                runs[name].append(steps[name]())
                if name in cpu:
                    cpu[name] += server.cpu_seconds() - before
                shutil.rmtree(media / "uploads", ignore_errors=True)
    finally:
        server.stop()
    src.unlink()

    size_mb = size / 1e6
    say(
        f"{args.size_mib} MiB simple upload, {args.rounds} interleaved rounds "
        f"(gunicorn {' '.join(PRODUCTION)} boot.wsgi, {os.cpu_count()} cores, local storage)"
    )
    for name, seconds in runs.items():
        spread = ", ".join(f"{size_mb / s:.0f}" for s in seconds)
        say(f"  {name:<12} median {size_mb / statistics.median(seconds):7.1f} MB/s   [{spread}]")
    # Each round's upload against the copy of the same round, so that load from
    # elsewhere on the machine, which comes and goes, weighs on both sides.
    for copy, what in [
        ("copy + fsync", "the issue's plain copy (copyfile + fsync, as bench/api_endpoints.py)"),
        ("copy, cached", "a copy into the page cache (no fsync; the uploads do none either)"),
    ]:
        say(f"  against {what}:")
        for name, label in [
            ("API", "API"),
            ("form", "form"),
            ("sha256 alone", "ceiling for any upload that hashes (sha256 alone)"),
        ]:
            ratios = sorted(c / s for c, s in zip(runs[copy], runs[name], strict=True))
            target = " (target >= 0.3x)" if name != "sha256 alone" else ""
            say(
                f"    {label}: median {statistics.median(ratios):.2f}x "
                f"(rounds {ratios[0]:.2f}-{ratios[-1]:.2f}x){target}"
            )
    # What the server spent, whoever else shared the machine: the figure
    # that load elsewhere moves least (it includes each request's fixed cost).
    for name, spent in cpu.items():
        say(
            f"  server CPU, {name}: {spent * 1000 / args.rounds:.0f} ms per upload, "
            f"{spent * 1000 / args.rounds / size_mb:.2f} ms per MB"
        )


def _checked(answer: Answer, expected: str) -> float:
    assert answer.headers["sha256"] == expected, "stored sha256 differs"
    return answer.seconds


def memory(args: argparse.Namespace, env: dict[str, str], cluster: PrivateCluster) -> None:
    sizes = [int(s) for s in args.rss_mib.split(",") if s]
    if not sizes:
        return
    work = cluster.base / "work"
    media = Path(env["MEDIA_ROOT"])
    big = {**env, "FILE_UPLOAD_MAX_SIZE": str(max(sizes) * MIB + MIB)}
    say("peak RSS of the web workers (VmHWM; one API and one form upload on a fresh server)")
    peaks = []
    for size_mib in sizes:
        src = work / f"rss-{size_mib}.bin"
        expected = make_file(src, size_mib * MIB)
        server = Server(big, cluster.base / "logs" / f"web-rss-{size_mib}.log")
        try:
            idle = max(server.worker_peaks_mib())
            portal = Portal(server, big, cluster.url)
            _checked(portal.api(src), expected)
            _checked(portal.form(src), expected)
            peak = max(server.worker_peaks_mib())
        finally:
            server.stop()
        src.unlink()
        shutil.rmtree(media / "uploads", ignore_errors=True)
        peaks.append(peak)
        say(f"  {size_mib:5d} MiB upload: {peak:6.1f} MiB (idle {idle:.1f} MiB)")
    if len(peaks) >= 2:
        say(f"  ratio largest / smallest upload: {peaks[-1] / peaks[0]:.2f}x (flat = 1.00)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=45, help="throughput upload size")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--rss-mib", default="45,450", help="sizes for the peak-RSS runs")
    args = parser.parse_args()

    cluster = PrivateCluster(dbname="doorito_simplebench")
    try:
        cluster.start()
        (cluster.base / "logs").mkdir()
        env = production_env(
            cluster.url,
            cluster.base / "media",
            SECRET_KEY=secrets.token_urlsafe(50),
            STATIC_ROOT=str(cluster.base / "static"),
        )
        manage(env, "migrate", "--noinput")
        manage(env, "collectstatic", "--noinput", "-v", "0")  # the upload page's assets
        manage(env, "create_user", "bench@example.com", "--no-password")
        throughput(args, env, cluster)
        memory(args, env, cluster)
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
