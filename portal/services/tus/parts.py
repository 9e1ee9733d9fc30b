"""Where a resumable upload's bytes live until it becomes a file: one part store per backend.

``ObjectPartStore`` (S3 and any storage without local paths): each accepted
PATCH body is its own object under ``tus/<upload id>/``, because several
processes may receive PATCHes of one upload and object stores cannot append.
``LocalPartStore``: one data file per upload, ``tus/<upload id>/data``, each
body written at its offset, so finalising is a rename. The session logic
(locks, offsets, records) is in ``portal.services.tus.sessions``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING
from uuid import UUID

from django.core.files.base import ContentFile
from uuid_utils.compat import uuid4

from portal.models import UploadPart, UploadSession
from portal.services.hashing import (
    STREAM_CHUNK_SIZE,
    BinaryStream,
    Hasher,
    HashingReader,
    as_file,
    read_head,
)
from portal.services.stored_objects import delete_objects
from portal.services.tus.errors import ChecksumMismatchError
from portal.storage import file_storage, has_local_paths

if TYPE_CHECKING:
    from django.core.files.storage import Storage

    from portal.services.tus.values import Checksum

PART_KEY_PREFIX = "tus"
HASH_ON_THREAD_FROM = 1024 * 1024  # bytes in one PATCH


@dataclass(frozen=True)
class WrittenPart:
    key: str
    size: int


@dataclass(frozen=True)
class Assembled:
    key: str
    size: int
    sha256: str


def upload_objects(part_keys: Iterable[str]) -> list[str]:
    """One upload's part keys as the objects holding its bytes, in order, each once.

    On local disk all of an upload's parts name its one data file.
    """
    return list(dict.fromkeys(part_keys))


def session_prefix(session_id: UUID) -> str:
    return f"{PART_KEY_PREFIX}/{session_id}"


class _PartsStream:
    """The objects ``keys`` names read back in order as one stream."""

    def __init__(self, storage: Storage, keys: Sequence[str]):
        self._storage = storage
        self._keys = list(keys)
        self._current: IO[bytes] | None = None

    def read(self, size: int = -1, /) -> bytes:
        while True:
            if self._current is None:
                if not self._keys:
                    return b""
                self._current = self._storage.open(self._keys.pop(0), "rb")
            data: bytes = self._current.read(size)
            if data:
                return data
            self.close()

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None


class PartStore(ABC):
    """What both backends do the same way; each subclass says where the bytes go."""

    def __init__(self, storage: Storage):
        self.storage = storage

    def write(
        self,
        *,
        session: UploadSession,
        stream: BinaryStream,
        limit: int,
        checksum: Checksum | None,
        running: Hasher | None = None,
    ) -> WrittenPart | None:
        """Stream up to ``limit`` bytes into storage; ``None`` if nothing arrived.

        With a checksum the bytes are kept only if they verify (a cut-off
        body can never verify); without one, whatever arrived is kept, as
        tus asks.
        """
        hasher = checksum.new_hasher() if checksum else None
        reader = HashingReader(
            stream,
            hashers=[h for h in (hasher, running) if h is not None],
            limit=limit,
            tolerate_disconnect=True,
            # A thread pays off when hashing overlaps waiting for the body;
            # starting one costs more than hashing a small body inline.
            hash_on_thread=limit > HASH_ON_THREAD_FROM,
        )
        try:
            key = self._store(session=session, reader=reader)
        finally:
            reader.finish()
        if (
            checksum is not None
            and hasher is not None
            and (reader.interrupted or hasher.digest() != checksum.digest)
        ):
            self.discard(session_id=session.id, key=key, offset=session.offset)
            raise ChecksumMismatchError(
                details={"algorithm": checksum.algorithm, "received_bytes": reader.size}
            )
        if reader.size == 0:
            self.discard(session_id=session.id, key=key, offset=session.offset)
            return None
        return WrittenPart(key=key, size=reader.size)

    def read_head(self, keys: Sequence[str]) -> bytes:
        """The first bytes of the parts together (for the type check)."""
        parts = _PartsStream(self.storage, keys)
        try:
            return read_head(parts)
        finally:
            parts.close()

    def purge(self, session_ids: Sequence[UUID]) -> int:
        """Delete the part objects, then the part rows, of sessions that are over.

        Objects under a session's prefix that no row records (a process died
        between writing a part and recording it) go too.
        """
        parts = list(
            UploadPart.objects.filter(session_id__in=session_ids).values_list("id", "storage_key")
        )
        delete_objects(key for _, key in parts)
        if parts:
            UploadPart.objects.filter(id__in=[pk for pk, _ in parts]).delete()
        for session_id in session_ids:
            self._delete_unrecorded(session_id)
        return len(parts)

    @contextmanager
    def _reading(self, keys: Sequence[str]) -> Iterator[tuple[HashingReader, Hasher]]:
        """The parts as one stream, hashed with sha256 as they are read."""
        parts = _PartsStream(self.storage, keys)
        sha256 = hashlib.sha256()
        try:
            yield HashingReader(parts, hashers=[sha256]), sha256
        finally:
            parts.close()

    @abstractmethod
    def _store(self, *, session: UploadSession, reader: HashingReader) -> str:
        """Write the body ``reader`` yields; the key it is recorded under."""

    @abstractmethod
    def discard(self, *, session_id: UUID, key: str, offset: int) -> None:
        """Undo a write that will not be recorded (the session stays at ``offset``)."""

    @abstractmethod
    def assemble(
        self, part_keys: Sequence[str], *, key: str, known_sha256: str | None = None
    ) -> Assembled:
        """Concatenate the objects ``part_keys`` names, in order, into ``key``.

        Each key is used as often as it is named (a final upload may name one
        partial upload twice); callers list an upload's objects once each
        (``upload_objects``).
        """

    def unassemble(self, part_keys: Sequence[str], assembled: Assembled) -> None:
        """Undo ``assemble`` when its file cannot be recorded, leaving the parts as they were."""
        delete_objects([assembled.key])

    @abstractmethod
    def _delete_unrecorded(self, session_id: UUID) -> None: ...


class ObjectPartStore(PartStore):
    """Each PATCH body its own object; assembly streams them into one (an S3 multipart upload)."""

    def _store(self, *, session: UploadSession, reader: HashingReader) -> str:
        return self.storage.save(f"{session_prefix(session.id)}/{uuid4().hex}", as_file(reader))

    def discard(self, *, session_id: UUID, key: str, offset: int) -> None:
        delete_objects([key])

    def assemble(
        self, part_keys: Sequence[str], *, key: str, known_sha256: str | None = None
    ) -> Assembled:
        # The parts are read anyway, so they are hashed on the way.
        with self._reading(part_keys) as (reader, sha256):
            key = self.storage.save(key, as_file(reader))
        return Assembled(key=key, size=reader.size, sha256=sha256.hexdigest())

    def _delete_unrecorded(self, session_id: UUID) -> None:
        prefix = session_prefix(session_id)
        try:
            _, names = self.storage.listdir(prefix)
        except (FileNotFoundError, NotImplementedError):
            return
        delete_objects(f"{prefix}/{name}" for name in names)


class LocalPartStore(PartStore):
    """One data file per upload, each body written at its offset; assembly is a rename."""

    def data_file_key(self, session_id: UUID) -> str:
        return f"{session_prefix(session_id)}/data"

    def _store(self, *, session: UploadSession, reader: HashingReader) -> str:
        # What is past the recorded offset (left by a request that died
        # before recording it) is cut off first.
        key = self.data_file_key(session.id)
        path = self.storage.path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644), "wb", buffering=0) as fh:
            fh.truncate(session.offset)
            fh.seek(session.offset)
            for chunk in reader.chunks():
                fh.write(chunk)
        return key

    def discard(self, *, session_id: UUID, key: str, offset: int) -> None:
        if key != self.data_file_key(session_id):
            delete_objects([key])
            return
        with suppress(FileNotFoundError), open(self.storage.path(key), "r+b") as fh:
            fh.truncate(offset)

    def assemble(
        self, part_keys: Sequence[str], *, key: str, known_sha256: str | None = None
    ) -> Assembled:
        """A rename for one upload's data file; partial uploads are copied in the kernel.

        The bytes are read at most once, for the hash; not at all when the
        receiving process already hashed them (``known_sha256``).
        """
        digest = known_sha256
        if digest is None:
            with self._reading(part_keys) as (reader, sha256):
                reader.drain()
            digest = sha256.hexdigest()
        if len(part_keys) == 1:
            # The key is fresh (a new uuid), so nothing can be overwritten.
            target = self.storage.path(key)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(self.storage.path(part_keys[0]), target)
            return Assembled(key=key, size=os.path.getsize(target), sha256=digest)

        key = self.storage.save(key, ContentFile(b""))
        try:
            with open(self.storage.path(key), "r+b", buffering=0) as out:
                for part_key in part_keys:
                    with open(self.storage.path(part_key), "rb", buffering=0) as part:
                        _append_file(part, out)
                size = out.tell()
        except BaseException:
            delete_objects([key])
            raise
        return Assembled(key=key, size=size, sha256=digest)

    def unassemble(self, part_keys: Sequence[str], assembled: Assembled) -> None:
        if len(part_keys) == 1:
            # The data file was renamed, not copied: put it back, so the upload
            # can still be finished (a database outage during finalisation).
            os.replace(self.storage.path(assembled.key), self.storage.path(part_keys[0]))
            return
        super().unassemble(part_keys, assembled)

    def _delete_unrecorded(self, session_id: UUID) -> None:
        shutil.rmtree(self.storage.path(session_prefix(session_id)), ignore_errors=True)


def _append_file(src: IO[bytes], dst: IO[bytes]) -> None:
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


def part_store() -> PartStore:
    """The part store of the storage files live in (resolved per call so tests can swap it)."""
    storage = file_storage()
    return LocalPartStore(storage) if has_local_paths(storage) else ObjectPartStore(storage)
