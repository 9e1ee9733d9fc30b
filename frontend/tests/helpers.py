"""Test data for the files and batches pages, made through the real services."""

from __future__ import annotations

import io

from portal.models import UploadBatch, UploadFile
from portal.services.batches import batch_create
from portal.services.uploads import upload_file_create


def make_file(
    owner, name: str = "report.txt", data: bytes = b"hello world\n", **kwargs
) -> UploadFile:
    return upload_file_create(owner=owner, stream=io.BytesIO(data), filename=name, **kwargs)


def make_batch(owner, name: str = "Monday scans", **kwargs) -> UploadBatch:
    return batch_create(owner=owner, metadata={"name": name}, **kwargs)


def path_of(url: str) -> str:
    """The path of an absolute URL (the test client talks to paths)."""
    return "/" + url.split("/", 3)[3]
