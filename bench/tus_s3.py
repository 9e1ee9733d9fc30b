"""Doorito's tus endpoint into S3 beside @tus/server with @tus/s3-store, on one moto server.

Runs, on 127.0.0.1:

- **moto** (its S3 server, in a subprocess) behind a counter of the bytes
  each bucket is sent in PUTs (objects and multipart parts), one bucket per
  server;
- **Doorito** under the documented production command (``gunicorn -c
  deploy/gunicorn.conf.py boot.wsgi``, ``STORAGE_BACKEND=s3``) against a
  private PostgreSQL cluster;
- **@tus/server 2 with @tus/s3-store 2** on Node, installed with npm into a
  temporary folder for this run only (never a dependency of Doorito).

The same client (``tuspy``) uploads the same file to both in interleaved
rounds (the order alternating), 8 MiB PATCHes by default, and the bench
prints each server's median MB/s, the ratio (target >= 1.0x), and the bytes
each wrote to S3 per byte uploaded (goal 1.0). Doorito's stored object is
read back and hashed after each round (outside the timing).

    .venv/bin/python bench/tus_s3.py                        # 256 MiB, 3 rounds
    .venv/bin/python bench/tus_s3.py --size-mib 64 --rounds 2   # quicker
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from gunicorn_server import ProductionServer, manage, production_env
from tus_vs_node import npm_install, say, stop, upload, wait_until_up
from upload import make_file, warm_page_cache

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.private_cluster import PrivateCluster, free_port  # noqa: E402

MIB = 1024 * 1024
KEY = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
NODE_PACKAGES = ["@tus/server@2", "@tus/s3-store@2"]
NODE_SERVER = """
import http from "node:http";
import { Server } from "@tus/server";
import { S3Store } from "@tus/s3-store";

const [port, endpoint, bucket] = process.argv.slice(2);
const datastore = new S3Store({
  s3ClientConfig: {
    bucket, endpoint, region: "us-east-1", forcePathStyle: true,
    credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
  },
});
const tus = new Server({ path: "/files", datastore });
http.createServer((req, res) => tus.handle(req, res)).listen(Number(port), "127.0.0.1");
"""
COUNTS_PATH = "/__put_bytes__"  # CountingMotoServer.COUNTS_PATH


def serve_moto(port: int) -> None:
    """The subprocess: moto's S3 server, counting PUT bytes, answering ``COUNTS_PATH``."""
    from tests.fixtures.storage import CountingMotoServer

    server = CountingMotoServer(port=port)
    server.start()
    while True:
        time.sleep(3600)


class Moto:
    def __init__(self, work: Path):
        import boto3

        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = work / "moto.log"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-moto", str(self.port)],
            cwd=ROOT,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until_up(self.endpoint + COUNTS_PATH, self.proc, self.log)
        self.client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", **KEY)
        for bucket in ("doorito", "node"):
            self.client.create_bucket(Bucket=bucket)

    def put_bytes(self, bucket: str) -> int:
        with urllib.request.urlopen(self.endpoint + COUNTS_PATH, timeout=10) as answer:
            return int(json.loads(answer.read()).get(bucket, 0))

    def empty(self, bucket: str) -> None:
        """Delete the bucket's objects and multipart uploads (moto keeps them in memory)."""
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        for mpu in self.client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            self.client.abort_multipart_upload(
                Bucket=bucket, Key=mpu["Key"], UploadId=mpu["UploadId"]
            )

    def sha256(self, bucket: str, key: str) -> str:
        digest = hashlib.sha256()
        body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
        while chunk := body.read(MIB):
            digest.update(chunk)
        return digest.hexdigest()


class NodeTusS3:
    def __init__(self, work: Path, moto: Moto):
        self.dir = work / "node"
        self.dir.mkdir()
        self.versions = npm_install(self.dir, NODE_PACKAGES)
        (self.dir / "server.mjs").write_text(NODE_SERVER)
        self.port = free_port()
        self.log = work / "node.log"
        self.proc = subprocess.Popen(
            ["node", "server.mjs", str(self.port), moto.endpoint, "node"],
            cwd=self.dir,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.endpoint = f"http://127.0.0.1:{self.port}/files"
        wait_until_up(self.endpoint, self.proc, self.log)


class DooritoS3:
    def __init__(self, work: Path, cluster: PrivateCluster, moto: Moto):
        self.env = production_env(
            cluster.url,
            work / "media",
            STATIC_ROOT=str(work / "static"),
            CELERY_TASK_ALWAYS_EAGER="false",
            RESUMABLE_UPLOAD_MAX_SIZE=str(64 * 1024 * MIB),
            STORAGE_BACKEND="s3",
            AWS_STORAGE_BUCKET_NAME="doorito",
            AWS_S3_ENDPOINT_URL=moto.endpoint,
            AWS_ACCESS_KEY_ID=KEY["aws_access_key_id"],
            AWS_SECRET_ACCESS_KEY=KEY["aws_secret_access_key"],
        )
        manage(self.env, "migrate", "-v", "0")
        manage(self.env, "create_user", "bench@example.com", "--no-password")
        self.token = manage(self.env, "create_token", "bench@example.com", "bench").split()[-1]
        self.server = ProductionServer(self.env, work / "web.log")
        self.proc = self.server.proc
        self.endpoint = f"{self.server.url}/api/tus/"
        self.dsn = cluster.url.replace("postgres://", "postgresql://", 1)

    def stored(self, upload_url: str) -> tuple[str, str]:
        """The recorded sha256 and storage key of the upload's file."""
        import psycopg

        upload_id = upload_url.rstrip("/").rsplit("/", 1)[1]
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute(
                "SELECT f.sha256, f.storage_key FROM portal_uploadsession s"
                " JOIN portal_uploadfile f ON f.id = s.file_id WHERE s.id = %s",
                [upload_id],
            ).fetchone()
        return (row[0], row[1]) if row else ("", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve-moto", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_moto:
        serve_moto(args.serve_moto)
        return

    work = Path(tempfile.mkdtemp(prefix="tus-s3-", dir=ROOT / ".data"))
    cluster = PrivateCluster(dbname="doorito_tuss3bench", max_connections=100)
    moto = node = doorito = None
    try:
        cluster.start()
        moto = Moto(work)
        node = NodeTusS3(work, moto)
        doorito = DooritoS3(work, cluster, moto)
        size = args.size_mib * MIB
        chunk = args.chunk_mib * MIB
        path = work / "big.bin"
        expected = make_file(path, size)
        warm_page_cache(work, 2 * size)
        say(f"{os.cpu_count()} cores; Doorito: gunicorn -c deploy/gunicorn.conf.py boot.wsgi")
        node_version = subprocess.check_output(["node", "-v"], text=True).strip()
        say(f"reference: {node.versions} on Node {node_version}; S3: moto (one server)")
        say(f"client: tuspy, {args.chunk_mib} MiB PATCHes, {args.rounds} interleaved rounds")
        auth = {"Authorization": f"Bearer {doorito.token}"}
        upload(doorito.endpoint, path, chunk, auth)  # warm-up (imports, connections)
        moto.empty("doorito")

        times: dict[str, list[float]] = {"node": [], "doorito": []}
        written: dict[str, list[float]] = {"node": [], "doorito": []}
        for i in range(args.rounds):
            order = ["node", "doorito"] if i % 2 == 0 else ["doorito", "node"]
            for name in order:
                before = moto.put_bytes(name)
                if name == "node":
                    took, _ = upload(node.endpoint, path, chunk, {})
                else:
                    took, url = upload(doorito.endpoint, path, chunk, auth)
                times[name].append(took)
                written[name].append((moto.put_bytes(name) - before) / size)
                if name == "doorito":
                    recorded, key = doorito.stored(url)
                    assert recorded == expected, f"Doorito recorded sha256 {recorded!r}"
                    actual = moto.sha256("doorito", key)
                    assert actual == expected, f"Doorito's object has sha256 {actual!r}"
                moto.empty(name)

        node_mbs = size / statistics.median(times["node"]) / 1e6
        door_mbs = size / statistics.median(times["doorito"]) / 1e6
        say()
        say(f"tus into S3: {args.size_mib} MiB in {args.chunk_mib} MiB PATCHes (median)")
        for label, name, mbs in (
            ("@tus/server + s3-store", "node", node_mbs),
            ("Doorito", "doorito", door_mbs),
        ):
            say(
                f"  {label:24s} {mbs:8.1f} MB/s   {[round(t, 2) for t in times[name]]} s"
                f"   S3 bytes written per byte: {statistics.median(written[name]):.3f}"
            )
        say(f"  Doorito / @tus/server    {door_mbs / node_mbs:8.2f}x  (target >= 1.0x)")
    finally:
        for server in (node, doorito, moto):
            if server is not None:
                stop(server.proc)
        cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
