"""Portal fixtures: the storage backends the same tests run against."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

S3_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's standalone S3-compatible server on 127.0.0.1 (a real HTTP server)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **S3_CREDENTIALS)


@pytest.fixture
def s3_bucket(settings, moto_endpoint) -> str:
    """A fresh bucket, made the default storage through ``settings.STORAGES``."""
    bucket = f"doorito-{uuid.uuid4().hex[:12]}"
    s3_client(moto_endpoint).create_bucket(Bucket=bucket)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": moto_endpoint,
                "region_name": "us-east-1",
                "access_key": S3_CREDENTIALS["aws_access_key_id"],
                "secret_key": S3_CREDENTIALS["aws_secret_access_key"],
                "querystring_expire": 3600,
                "file_overwrite": False,
            },
        },
    }
    return bucket


class StorageProbe:
    """Looks at the storage from outside the code under test."""

    def __init__(self, kind: str, *, media_root: str = "", endpoint: str = "", bucket: str = ""):
        self.kind = kind
        self.media_root = media_root
        self.endpoint = endpoint
        self.bucket = bucket

    def keys(self) -> set[str]:
        if self.kind == "s3":
            client = s3_client(self.endpoint)
            keys: set[str] = set()
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                keys.update(obj["Key"] for obj in page.get("Contents", []))
            return keys
        from pathlib import Path

        root = Path(self.media_root)
        if not root.exists():
            return set()
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}

    def pending_multipart_uploads(self) -> int:
        """Unfinished S3 multipart uploads (parts of an aborted upload would hide here)."""
        if self.kind != "s3":
            return 0
        response = s3_client(self.endpoint).list_multipart_uploads(Bucket=self.bucket)
        return len(response.get("Uploads", []))

    def read(self, key: str) -> bytes:
        if self.kind == "s3":
            return s3_client(self.endpoint).get_object(Bucket=self.bucket, Key=key)["Body"].read()
        from pathlib import Path

        return (Path(self.media_root) / key).read_bytes()


@pytest.fixture(params=["local", "s3"])
def storage(request, settings) -> StorageProbe:
    """Runs a test once on the local filesystem and once on S3 (moto)."""
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        return StorageProbe("s3", endpoint=request.getfixturevalue("moto_endpoint"), bucket=bucket)
    return StorageProbe("local", media_root=settings.MEDIA_ROOT)
