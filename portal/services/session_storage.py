"""Where a resumable upload's bytes live until it becomes a file.

Object storage (S3): each accepted PATCH body is its own object under
``tus/<upload id>/``. Local disk: one data file per upload,
``tus/<upload id>/data``, each body written at its offset, so finalising is a
rename. Bodies are streamed in 1 MiB pieces and hashed on a second thread;
memory never depends on the size of a PATCH or of the file. The session
logic (locks, offsets, records) is in ``portal.services.sessions``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from django.core.files.base import ContentFile
from uuid_utils.compat import uuid4

from common.exceptions import ApplicationError
from portal.models import UploadPart, UploadSession
from portal.storage import file_storage

if TYPE_CHECKING:
    from portal.tus.headers import Checksum

logger = logging.getLogger(__name__)

# Reads from the request and from parts happen in pieces of this size, so
# memory use does not depend on the size of a PATCH or of the file.
STREAM_CHUNK_SIZE = 1024 * 1024
# Enough leading bytes for content sniffing.
HEAD_BYTES = 8192
PART_KEY_PREFIX = "tus"


class ChecksumMismatchError(ApplicationError):
    code = "checksum_mismatch"
    status_code = 460
    default_message = "The checksum of the received bytes does not match Upload-Checksum."


class BinaryStream(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


# --- streaming helpers ----------------------------------------------------------


def _fill(read_some: Any, size: int | None) -> bytes:
    """``size`` bytes (fewer only at the end), as callers of ``read(n)`` expect.

    boto3 takes a short read for the end of the stream. Without a size, the
    next chunk rather than everything: memory must not grow with the upload.
    """
    want = STREAM_CHUNK_SIZE if size is None or size < 0 else size
    pieces = []
    got = 0
    while got < want:
        data = read_some(want - got)
        if not data:
            break
        pieces.append(data)
        got += len(data)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


class _HashingThread:
    """Feeds hashers from a second thread.

    hashlib releases the GIL while it hashes a large buffer, so hashing runs
    alongside reading the socket and writing storage instead of after them.
    The queue is bounded: memory stays at a few chunks however fast the
    client sends.
    """

    def __init__(self, hashers: list[Any]):
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._thread = threading.Thread(target=self._run, args=(hashers,), daemon=True)
        self._thread.start()

    def _run(self, hashers: list[Any]) -> None:
        while (data := self._queue.get()) is not None:
            for hasher in hashers:
                hasher.update(data)

    def update(self, data: bytes) -> None:
        self._queue.put(data)

    def finish(self) -> None:
        """Wait until every queued byte is hashed."""
        self._queue.put(None)
        self._thread.join()


class _ForwardStream:
    """A read-once file for ``Storage.save``, with no seeking.

    ``read(n)`` fills whole buffers from ``_read_some``, so S3 gets full parts.
    """

    closed = False

    def read(self, size: int = -1) -> bytes:
        return _fill(self._read_some, size)

    def _read_some(self, size: int) -> bytes:
        raise NotImplementedError

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        while data := self.read(chunk_size or STREAM_CHUNK_SIZE):
            yield data

    def seekable(self) -> bool:
        return False


class _BodyReader(_ForwardStream):
    """Reads at most ``limit`` bytes of a request body, feeding ``hashers``.

    A client that drops the connection just ends the stream early
    (``interrupted``): tus asks servers to keep what did arrive. Quacks enough
    like a file for ``Storage.save`` on the filesystem and on S3.
    """

    def __init__(self, stream: BinaryStream, *, limit: int, hashers: list[Any]):
        self._stream = stream
        self._remaining = limit
        self._hashing = _HashingThread(hashers) if hashers else None
        self.size = 0
        self.interrupted = False

    def _read_some(self, size: int) -> bytes:
        if self._remaining <= 0:
            return b""
        try:
            data = self._stream.read(min(size, self._remaining, STREAM_CHUNK_SIZE))
        except OSError:
            data = b""
        if not data:
            self.interrupted = True
            self._remaining = 0
            return b""
        self._remaining -= len(data)
        self.size += len(data)
        if self._hashing is not None:
            self._hashing.update(data)
        return data

    def finish(self) -> None:
        """Wait for the hashes of everything read so far (call exactly once)."""
        if self._hashing is not None:
            self._hashing.finish()

    def close(self) -> None:
        pass


class _PartsReader(_ForwardStream):
    """The parts of an upload read back in order as one stream, hashed with sha256."""

    def __init__(self, keys: list[str]):
        self._keys = list(keys)
        self._current = None
        self.sha256 = hashlib.sha256()
        self.size = 0

    def _read_some(self, size: int) -> bytes:
        while True:
            if self._current is None:
                if not self._keys:
                    return b""
                self._current = file_storage().open(self._keys.pop(0), "rb")
            data = self._current.read(min(size, STREAM_CHUNK_SIZE))
            if data:
                self.sha256.update(data)
                self.size += len(data)
                return data
            self._current.close()
            self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None


@dataclass(frozen=True)
class Assembled:
    key: str
    size: int
    sha256: str


def assemble(part_keys: list[str], *, key: str, known_sha256: str | None = None) -> Assembled:
    """Concatenate the objects ``part_keys`` names, in order, into ``key``, hashing with sha256.

    Each key is used as often as it is named (a final upload may name one
    partial upload twice); callers list an upload's objects once each
    (``upload_objects``).

    Any storage: the parts are streamed into ``Storage.save`` (on S3 a
    multipart upload). Local disk: one upload's bytes are already one file
    (see ``_write_part``), which is renamed; partial uploads being
    concatenated are copied in the kernel (``copy_file_range``). The bytes
    are read at most once, for the hash, through one reused buffer; not at
    all when the receiving process already hashed them (``known_sha256``).
    """
    keys = list(part_keys)
    storage = file_storage()
    if not has_local_paths(storage):
        reader = _PartsReader(keys)
        try:
            key = storage.save(key, reader)
        finally:
            reader.close()
        return Assembled(key=key, size=reader.size, sha256=reader.sha256.hexdigest())

    sha256 = hashlib.sha256()
    if known_sha256 is None:
        buffer = bytearray(STREAM_CHUNK_SIZE)
        view = memoryview(buffer)
        for part_key in keys:
            with open(storage.path(part_key), "rb", buffering=0) as part:
                while n := part.readinto(buffer):
                    sha256.update(view[:n])
    digest = known_sha256 or sha256.hexdigest()
    if len(keys) == 1:
        # The key is fresh (a new uuid), so nothing can be overwritten.
        target = storage.path(key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(storage.path(keys[0]), target)
        return Assembled(key=key, size=os.path.getsize(target), sha256=digest)

    key = storage.save(key, ContentFile(b""))
    try:
        with open(storage.path(key), "r+b", buffering=0) as out:
            for part_key in keys:
                with open(storage.path(part_key), "rb", buffering=0) as part:
                    _copy_file(part, out)
            size = out.tell()
    except BaseException:
        delete_objects([key])
        raise
    return Assembled(key=key, size=size, sha256=digest)


def _distinct(keys: list[str]) -> list[str]:
    """Keys in order, each once (on local disk an upload's parts share one file)."""
    return list(dict.fromkeys(keys))


def upload_objects(part_keys: list[str]) -> list[str]:
    """One upload's part keys as the objects holding its bytes, in order, each once."""
    return _distinct(part_keys)


def has_local_paths(storage: Any) -> bool:
    try:
        storage.path("probe")
    except NotImplementedError:
        return False
    return True


def _copy_file(src: Any, dst: Any) -> None:
    """Append all of ``src`` to ``dst`` in the kernel where it can, else through Python."""
    src.seek(0)
    remaining = os.fstat(src.fileno()).st_size
    try:
        while remaining > 0:
            copied = os.copy_file_range(src.fileno(), dst.fileno(), remaining)
            if copied == 0:
                break
            remaining -= copied
    except OSError:
        src.seek(os.fstat(src.fileno()).st_size - remaining)
        shutil.copyfileobj(src, dst, STREAM_CHUNK_SIZE)
        remaining = 0


def read_head(keys: list[str], limit: int = HEAD_BYTES) -> bytes:
    head = b""
    storage = file_storage()
    for key in keys:
        with storage.open(key, "rb") as fh:
            head += fh.read(limit - len(head))
        if len(head) >= limit:
            break
    return head


def delete_objects(keys: list[str]) -> None:
    """Delete storage objects, tolerating ones that are already gone."""
    storage = file_storage()
    for key in _distinct(keys):
        try:
            storage.delete(key)
        except FileNotFoundError:
            pass
        except Exception:
            logger.exception("Could not delete upload part object %s", key)


def purge_parts(session_ids: list[UUID]) -> int:
    """Delete the part objects, then the part rows, of sessions that are over.

    Objects under a session's prefix that no row records (a process died
    between writing a part and recording it) go too, and on local disk the
    emptied directory.
    """
    parts = list(
        UploadPart.objects.filter(session_id__in=session_ids).values_list("id", "storage_key")
    )
    delete_objects([key for _, key in parts])
    if parts:
        UploadPart.objects.filter(id__in=[pk for pk, _ in parts]).delete()
    for session_id in session_ids:
        _delete_prefix(f"{PART_KEY_PREFIX}/{session_id}")
    return len(parts)


def _delete_prefix(prefix: str) -> None:
    storage = file_storage()
    try:
        _, names = storage.listdir(prefix)
    except (FileNotFoundError, NotImplementedError):
        names = []
    delete_objects([f"{prefix}/{name}" for name in names])
    if has_local_paths(storage):
        with suppress(OSError):
            os.rmdir(storage.path(prefix))


class RunningHashes:
    """The sha256 of each upload's bytes so far, in the process that received them.

    Only a shortcut: a hash state cannot be shared between processes, so it is
    used when this process also received every earlier PATCH of the upload
    (its offset matches the session's); otherwise finalisation reads the parts
    back to hash them, as any process can. It hashes while the body arrives,
    when the process would otherwise wait for the network, and spares the last
    PATCH a full read of the file. Bounded, least recently used dropped first.
    """

    def __init__(self, capacity: int = 1024):
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[UUID, tuple[int, Any]] = OrderedDict()

    def take(self, session_id: UUID, offset: int) -> Any | None:
        """The hash of the first ``offset`` bytes, removed from the cache, or ``None``."""
        with self._lock:
            entry = self._entries.pop(session_id, None)
        if offset == 0:
            return hashlib.sha256()
        if entry is not None and entry[0] == offset:
            return entry[1]
        return None

    def keep(self, session_id: UUID, offset: int, hasher: Any) -> None:
        with self._lock:
            self._entries[session_id] = (offset, hasher)
            self._entries.move_to_end(session_id)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)


running_hashes = RunningHashes()


def write_part(
    *,
    session: UploadSession,
    stream: BinaryStream,
    limit: int,
    checksum: Checksum | None,
    running: Any | None = None,
) -> tuple[str, int] | None:
    """Stream up to ``limit`` bytes into storage; ``None`` if nothing arrived.

    With a checksum the bytes are kept only if they verify (a cut-off body
    can never verify); without one, whatever arrived is kept.

    Object storage: each PATCH becomes its own object. Local disk: all of an
    upload's bytes go into one data file at their offset (what is past the
    recorded offset, left by a request that died before recording, is cut
    off first), so finalising is a rename instead of a copy.
    """
    hasher = checksum.new_hasher() if checksum else None
    hashers = [h for h in (hasher, running) if h is not None]
    reader = _BodyReader(stream, limit=limit, hashers=hashers)
    storage = file_storage()
    try:
        if has_local_paths(storage):
            key = data_file_key(session.id)
            path = storage.path(key)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644), "wb", buffering=0) as fh:
                fh.truncate(session.offset)
                fh.seek(session.offset)
                for chunk in reader.chunks():
                    fh.write(chunk)
        else:
            key = storage.save(f"{PART_KEY_PREFIX}/{session.id}/{uuid4().hex}", reader)
    finally:
        reader.finish()
    if checksum is not None and (reader.interrupted or hasher.digest() != checksum.digest):
        discard_write(session=session, key=key, offset=session.offset)
        raise ChecksumMismatchError(
            details={"algorithm": checksum.algorithm, "received_bytes": reader.size}
        )
    if reader.size == 0:
        discard_write(session=session, key=key, offset=session.offset)
        return None
    return key, reader.size


def data_file_key(session_id: UUID) -> str:
    return f"{PART_KEY_PREFIX}/{session_id}/data"


def discard_write(*, session: UploadSession, key: str, offset: int) -> None:
    """Undo a write that will not be recorded: cut the data file back, or delete the part."""
    storage = file_storage()
    if key == data_file_key(session.id) and has_local_paths(storage):
        with suppress(FileNotFoundError), open(storage.path(key), "r+b") as fh:
            fh.truncate(offset)
        return
    delete_objects([key])
