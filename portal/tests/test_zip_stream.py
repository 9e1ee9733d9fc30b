"""The streamed zip: correct entries, and memory that stays flat over a 1 GiB batch."""

from __future__ import annotations

import io
import os
import tracemalloc
import zipfile
from pathlib import Path

from django.utils import timezone

from portal.models import UploadBatch, UploadFile
from portal.services.zip_stream import zip_plan, zip_stream
from portal.storage import generate_storage_key

MiB = 1024 * 1024


def sparse_file(user, batch, media_root: str, name: str, size: int) -> UploadFile:
    """A stored file of ``size`` zero bytes that takes no disk space (a sparse file)."""
    key = generate_storage_key()
    path = Path(media_root) / key
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(size)
    return UploadFile.objects.create(
        owner=user,
        batch=batch,
        storage_key=key,
        filename=name,
        size=size,
        status=UploadFile.Status.STORED,
        stored_at=timezone.now(),
    )


def test_names_are_unique_and_safe(user):
    files = [
        UploadFile(owner=user, filename=name)
        for name in ["a.txt", "A.txt", "a.txt", "../x", "noext", "noext", ".hidden"]
    ]
    names = [name for name, _ in zip_plan(files).entries]
    assert names == ["a.txt", "A (2).txt", "a (3).txt", "_x", "noext", "noext (2)", "hidden"]


def test_small_zip_reads_back(user, settings):
    batch = UploadBatch.objects.create(owner=user)
    files = [sparse_file(user, batch, settings.MEDIA_ROOT, f"f{i}.bin", i * 1000) for i in range(4)]
    data = b"".join(zip_stream(zip_plan(files)))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert [i.file_size for i in archive.infolist()] == [0, 1000, 2000, 3000]
        assert all(i.flag_bits & 0x08 for i in archive.infolist())  # data descriptors


def test_memory_stays_flat_over_a_1_gib_batch(user, settings):
    batch = UploadBatch.objects.create(owner=user)
    sizes = [256 * MiB] * 4
    files = [
        sparse_file(user, batch, settings.MEDIA_ROOT, f"part-{i}.bin", size)
        for i, size in enumerate(sizes)
    ]
    assert sum(os.stat(Path(settings.MEDIA_ROOT) / f.storage_key).st_blocks for f in files) < 64

    tracemalloc.start()
    try:
        sent = 0
        largest_piece = 0
        tail = b""
        for piece in zip_stream(zip_plan(files)):
            sent += len(piece)
            largest_piece = max(largest_piece, len(piece))
            tail = (tail + piece)[-4096:]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert sent > sum(sizes)  # every byte, plus headers and the directory
    assert sent < sum(sizes) + 64 * 1024
    assert largest_piece <= 1 * MiB
    # Python-level allocations at their highest: a few pieces, not the batch.
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB while streaming 1 GiB"
    # The archive ends with its end-of-central-directory record naming 4 entries.
    eocd = tail.rindex(b"PK\x05\x06")
    assert int.from_bytes(tail[eocd + 10 : eocd + 12], "little") == 4
