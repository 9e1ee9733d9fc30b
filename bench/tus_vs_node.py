"""Doorito's tus endpoint side by side with the reference tus server, @tus/server.

Runs, on 127.0.0.1:

- **Doorito** under the documented production command (``gunicorn -c
  deploy/gunicorn.conf.py boot.wsgi``, ``DJANGO_CONFIGURATION=Production``,
  its default worker count) against a private PostgreSQL cluster;
- **@tus/server 2 with @tus/file-store 2** on Node, installed with npm into
  a temporary folder for this run only (never a dependency of Doorito),
  storing into a folder on the same disk.

The same client (``tuspy``, the stock Python client) uploads the same file
to both in interleaved rounds (the order alternating), and the bench prints:

1. throughput with 8 MiB PATCHes (``--chunk-mib``): each server's median
   MB/s and Doorito / @tus/server (target >= 1.0x), and Doorito against
   sha256 alone over the same bytes in memory (target >= 0.3x), since
   Doorito also hashes every byte and @tus/server does not;
2. the fixed cost of a PATCH: 64 KiB PATCHes (``--small-kib``), the time
   per PATCH on each server and the ratio (target <= 1.2x);
3. that Doorito stored the right sha256 each time.

tuspy opens a new connection for every request, so consecutive PATCHes of
one upload land on whichever gunicorn worker accepts them. After each round
both servers' files are deleted (Node's store cleared, Doorito's file
deleted through its API) outside the timing, so neither pays for the other
rounds' page-cache writeback.

    .venv/bin/python bench/tus_vs_node.py                    # 1 GiB, 3 rounds
    .venv/bin/python bench/tus_vs_node.py --size-mib 256 --rounds 2   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from gunicorn_server import ProductionServer, manage, production_env
from upload import make_file, sha256_only, stored_sha256, warm_page_cache

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.private_cluster import PrivateCluster, free_port  # noqa: E402

MIB = 1024 * 1024
NODE_PACKAGES = ["@tus/server@2", "@tus/file-store@2"]
NODE_SERVER = """
import http from "node:http";
import { Server } from "@tus/server";
import { FileStore } from "@tus/file-store";

const [port, directory] = process.argv.slice(2);
const tus = new Server({ path: "/files", datastore: new FileStore({ directory }) });
http.createServer((req, res) => tus.handle(req, res)).listen(Number(port), "127.0.0.1");
"""


def say(msg: str = "") -> None:
    print(msg, flush=True)


def wait_until_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited; see {log}:\n{log.read_text()[-3000:]}")
        try:
            httpx.options(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"server did not start; see {log}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def npm_install(directory: Path, packages: list[str]) -> str:
    """Install ``packages`` into ``directory`` (a temporary folder: never a
    dependency of Doorito); their names and versions, for the report."""
    say(f"npm install {' '.join(packages)} (into a temporary folder)")
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", *packages],
        cwd=directory,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    versions = [
        json.loads((directory / "node_modules" / p.rsplit("@", 1)[0] / "package.json").read_text())
        for p in packages
    ]
    return ", ".join(f"{v['name']} {v['version']}" for v in versions)


class NodeTus:
    def __init__(self, work: Path):
        self.dir = work / "node"
        self.dir.mkdir()
        self.store = work / "node-store"
        self.store.mkdir()
        self.versions = npm_install(self.dir, NODE_PACKAGES)
        (self.dir / "server.mjs").write_text(NODE_SERVER)
        self.port = free_port()
        self.log = work / "node.log"
        self.proc = subprocess.Popen(
            ["node", "server.mjs", str(self.port), str(self.store)],
            cwd=self.dir,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.endpoint = f"http://127.0.0.1:{self.port}/files"
        wait_until_up(self.endpoint, self.proc, self.log)

    def clear(self) -> None:
        for entry in self.store.iterdir():
            entry.unlink()


class Doorito:
    def __init__(self, work: Path, cluster: PrivateCluster):
        self.env = production_env(
            cluster.url,
            work / "media",
            STATIC_ROOT=str(work / "static"),
            CELERY_TASK_ALWAYS_EAGER="false",
            RESUMABLE_UPLOAD_MAX_SIZE=str(64 * 1024 * MIB),
        )
        manage(self.env, "migrate", "-v", "0")
        manage(self.env, "create_user", "bench@example.com", "--no-password")
        self.token = manage(self.env, "create_token", "bench@example.com", "bench").split()[-1]
        self.server = ProductionServer(self.env, work / "web.log")
        self.proc = self.server.proc
        self.endpoint = f"{self.server.url}/api/tus/"
        self.dsn = cluster.url.replace("postgres://", "postgresql://", 1)

    def stored_sha256(self, upload_url: str) -> str:
        return stored_sha256(argparse.Namespace(database_url=self.dsn), upload_url)

    def delete_stored(self, upload_url: str) -> None:
        """Delete the upload's file through the API, as Node's store is cleared after
        each round: a kept 1 GiB file's dirty pages would be written back during
        the next rounds and slow only Doorito's."""
        import psycopg

        upload_id = upload_url.rstrip("/").rsplit("/", 1)[1]
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute(
                "SELECT file_id FROM portal_uploadsession WHERE id = %s", [upload_id]
            ).fetchone()
        assert row is not None, f"no upload session {upload_id}"
        answer = httpx.delete(
            f"{self.server.url}/api/files/{row[0]}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
        )
        answer.raise_for_status()


def upload(endpoint: str, path: Path, chunk: int, headers: dict[str, str]) -> tuple[float, str]:
    from tusclient import client as tus_client

    client = tus_client.TusClient(endpoint, headers=headers)
    uploader = client.uploader(
        str(path), chunk_size=chunk, metadata={"filename": path.name}, retries=0
    )
    started = time.perf_counter()
    uploader.upload()
    took = time.perf_counter() - started
    assert uploader.url, "no upload URL"
    return took, uploader.url


def rounds(
    args: argparse.Namespace,
    node: NodeTus,
    doorito: Doorito,
    path: Path,
    chunk: int,
    expected: str,
) -> tuple[list[float], list[float]]:
    """Seconds per upload on each server, interleaved, the order alternating."""
    times: dict[str, list[float]] = {"node": [], "doorito": []}
    auth = {"Authorization": f"Bearer {doorito.token}"}
    for i in range(args.rounds):
        order = ["node", "doorito"] if i % 2 == 0 else ["doorito", "node"]
        for name in order:
            if name == "node":
                took, _ = upload(node.endpoint, path, chunk, {})
                node.clear()
            else:
                took, url = upload(doorito.endpoint, path, chunk, auth)
                stored = doorito.stored_sha256(url)
                assert stored == expected, f"Doorito stored sha256 {stored!r}, not {expected}"
                doorito.delete_stored(url)
            times[name].append(took)
    return times["node"], times["doorito"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small-kib", type=int, default=64, help="PATCH size for the fixed cost")
    parser.add_argument("--small-patches", type=int, default=400)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tus-vs-node-", dir=ROOT / ".data"))
    cluster = PrivateCluster(dbname="doorito_tusbench", max_connections=100)
    node = doorito = None
    try:
        cluster.start()
        node = NodeTus(work)
        doorito = Doorito(work, cluster)
        size = args.size_mib * MIB
        big = work / "big.bin"
        expected = make_file(big, size)
        warm_page_cache(work, 2 * size)
        small_size = args.small_kib * 1024 * args.small_patches
        small = work / "small.bin"
        small_expected = make_file(small, small_size)

        say(f"{os.cpu_count()} cores; Doorito: gunicorn -c deploy/gunicorn.conf.py boot.wsgi")
        node_version = subprocess.check_output(["node", "-v"], text=True).strip()
        say(f"reference: {node.versions} on Node {node_version}")
        say(f"client: tuspy, {args.rounds} interleaved rounds")
        say()
        upload(doorito.endpoint, small, 1024 * 1024, {"Authorization": f"Bearer {doorito.token}"})

        node_t, door_t = rounds(args, node, doorito, big, args.chunk_mib * MIB, expected)
        node_mbs = size / statistics.median(node_t) / 1e6
        door_mbs = size / statistics.median(door_t) / 1e6
        sha_mbs = size / min(sha256_only(big, MIB) for _ in range(3)) / 1e6
        say(f"throughput: {args.size_mib} MiB in {args.chunk_mib} MiB PATCHes (median)")
        say(f"  @tus/server + file-store  {node_mbs:8.1f} MB/s   {[round(t, 2) for t in node_t]} s")
        say(f"  Doorito                   {door_mbs:8.1f} MB/s   {[round(t, 2) for t in door_t]} s")
        say(f"  sha256 alone (in memory)  {sha_mbs:8.1f} MB/s")
        say(f"  Doorito / @tus/server     {door_mbs / node_mbs:8.2f}x  (target >= 1.0x)")
        say(f"  Doorito / sha256 ceiling  {door_mbs / sha_mbs:8.2f}x  (target >= 0.3x)")

        small_args = argparse.Namespace(**{**vars(args), "rounds": max(2, args.rounds)})
        node_t, door_t = rounds(
            small_args, node, doorito, small, args.small_kib * 1024, small_expected
        )
        per_node = statistics.median(node_t) / args.small_patches * 1000
        per_door = statistics.median(door_t) / args.small_patches * 1000
        say()
        say(f"per PATCH: {args.small_patches} PATCHes of {args.small_kib} KiB (median)")
        say(f"  @tus/server + file-store  {per_node:8.2f} ms")
        say(f"  Doorito                   {per_door:8.2f} ms")
        say(f"  Doorito / @tus/server     {per_door / per_node:8.2f}x  (target <= 1.2x)")
    finally:
        for server in (node, doorito):
            if server is not None:
                stop(server.proc)
        cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
