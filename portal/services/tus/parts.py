"""Where a resumable upload's bytes live until it becomes a file: one part store per backend.

``S3PartStore`` (django-storages' S3 backend): the upload *is* an S3
multipart upload of the final object, started with the first bytes; each
PATCH body goes up as its parts (S3 needs 5 MiB per part but the last), and
finalising completes it, so every byte is written to S3 once and read back
never. A body that leaves fewer than 5 MiB over (small PATCHes) keeps those
bytes as a small object under ``tus/<upload id>/`` until the next PATCH makes
a part of them (docs/tus.md, "S3").
``ObjectPartStore`` (any other storage without local paths): each accepted
PATCH body is its own object under ``tus/<upload id>/``, because several
processes may receive PATCHes of one upload and object stores cannot append.
``LocalPartStore``: one data file per upload, ``tus/<upload id>/data``, each
body written at its offset, so finalising is a rename. The session logic
(locks, offsets, records) is in ``portal.services.tus.sessions``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING
from uuid import UUID

from botocore.exceptions import ClientError
from django.core.files.base import ContentFile
from django.db import connection, transaction
from storages.utils import clean_name
from uuid_utils.compat import uuid4

from portal.models import UploadPart, UploadSession
from portal.services.hashing import (
    HEAD_SIZE,
    STREAM_CHUNK_SIZE,
    BinaryStream,
    Hasher,
    HashingReader,
    as_file,
    read_head,
)
from portal.services.stored_objects import delete_objects
from portal.services.tus.errors import ChecksumMismatchError
from portal.storage import file_storage, generate_storage_key, has_local_paths, is_s3_storage

if TYPE_CHECKING:
    from django.core.files.storage import Storage
    from storages.backends.s3 import S3Storage

    from portal.services.tus.values import Checksum

logger = logging.getLogger(__name__)

PART_KEY_PREFIX = "tus"
HASH_ON_THREAD_FROM = 1024 * 1024  # bytes in one PATCH
MIB = 1024 * 1024
# S3's smallest part (all but the last), and the most of a body held in
# memory before it goes up as a part: a PATCH of up to 16 MiB is one part.
S3_MIN_PART_SIZE = 5 * MIB
S3_PART_SIZE = 16 * MIB

# One uploaded part of an S3 multipart upload: [number, ETag, size, offset].
S3Part = tuple[int, str, int, int]


@dataclass(frozen=True)
class Stored:
    """What ``_store`` wrote: the object holding the body (or its leftover), and any S3 parts."""

    key: str
    s3_parts: tuple[S3Part, ...] = ()
    # Objects whose bytes went into these parts: deleted once the PATCH is recorded.
    consumed: tuple[str, ...] = ()
    # The object already has its part row (a local upload's one data file
    # after its first PATCH): the PATCH moves the offset and adds no row.
    known: bool = False


@dataclass(frozen=True)
class WrittenPart:
    key: str
    size: int
    s3_parts: tuple[S3Part, ...] = ()
    consumed: tuple[str, ...] = ()
    known: bool = False

    def s3_parts_json(self) -> str | None:
        """The S3 parts as the ``UploadPart.s3_parts`` column stores them (NULL for none)."""
        return json.dumps([list(p) for p in self.s3_parts]) if self.s3_parts else None


@dataclass(frozen=True)
class Assembled:
    key: str
    size: int
    sha256: str
    # Completed from the upload's own S3 multipart upload: there are no parts
    # left to fall back to, so the object stays when its record fails.
    multipart: bool = False


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
            stored = self._store(session=session, reader=reader, limit=limit)
        finally:
            reader.finish()
        key = stored.key
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
        return WrittenPart(
            key=key,
            size=reader.size,
            s3_parts=stored.s3_parts,
            consumed=stored.consumed,
            known=stored.known,
        )

    def recorded(self, written: WrittenPart) -> None:
        """The PATCH ``written`` is recorded: drop what it made unneeded."""
        if written.consumed:
            delete_objects(written.consumed)

    def seal(self, session: UploadSession) -> None:
        """A partial upload has all its bytes: make them readable objects (lock held)."""
        return

    def read_head(self, keys: Sequence[str], *, session: UploadSession | None = None) -> bytes:
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
    def _store(self, *, session: UploadSession, reader: HashingReader, limit: int) -> Stored:
        """Write the body ``reader`` yields (``limit`` bytes announced); where it went."""

    @abstractmethod
    def discard(self, *, session_id: UUID, key: str, offset: int) -> None:
        """Undo a write that will not be recorded (the session stays at ``offset``)."""

    @abstractmethod
    def assemble(
        self,
        part_keys: Sequence[str],
        *,
        key: str,
        known_sha256: str | None = None,
        session: UploadSession | None = None,
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

    def _store(self, *, session: UploadSession, reader: HashingReader, limit: int) -> Stored:
        return Stored(
            key=self.storage.save(f"{session_prefix(session.id)}/{uuid4().hex}", as_file(reader))
        )

    def discard(self, *, session_id: UUID, key: str, offset: int) -> None:
        delete_objects([key])

    def assemble(
        self,
        part_keys: Sequence[str],
        *,
        key: str,
        known_sha256: str | None = None,
        session: UploadSession | None = None,
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


class S3PartStore(ObjectPartStore):
    """The upload is the S3 multipart upload of its final object; finalising completes it.

    Every byte is written to S3 once (as a part of the final object) when the
    client sends PATCHes of 5 MiB or more, and never read back: the type
    check uses the first bytes saved on the session as they came in, and the
    sha256 is the one hashed on arrival. Bytes left over from a body (fewer
    than S3's 5 MiB minimum part, and not the upload's end) are kept as a
    small object under ``tus/<id>/`` and become part of the next part, so
    small PATCHes cost one extra write and one read of their bytes.

    Part numbers follow from what is recorded: a PATCH's first part is the
    one after the last recorded part, so a part uploaded but never recorded
    (a crash before the offset moved) is overwritten by the retry's part of
    the same number, or left out when the upload is completed.
    """

    storage: S3Storage

    def __init__(self, storage: S3Storage):
        super().__init__(storage)
        self.client = storage.connection.meta.client
        self.bucket = storage.bucket_name

    def _name(self, key: str) -> str:
        return str(self.storage._normalize_name(clean_name(key)))

    def _store(self, *, session: UploadSession, reader: HashingReader, limit: int) -> Stored:
        if session.offset > 0 and not session.s3_upload_id:
            # Begun before uploads were multipart uploads (its bytes are one
            # object per PATCH): it finishes the way it started.
            return super()._store(session=session, reader=reader, limit=limit)
        self._ensure_multipart(session)
        pending = _pending(session)
        ends_upload = session.length is not None and session.offset + limit == session.length
        buffer = bytearray()
        take_pending = bool(pending.keys) and (
            ends_upload or pending.size + limit >= S3_MIN_PART_SIZE
        )
        if take_pending:
            for key in pending.keys:
                with self.storage.open(key, "rb") as fh:
                    buffer += fh.read()
        # Bytes of the buffer that are earlier PATCHes' (still in their objects).
        earlier = len(buffer)
        parts: list[S3Part] = []
        number = pending.next_number
        part_offset = pending.flushed_end
        head = bytearray()
        for chunk in reader.chunks():
            if session.offset + len(head) < HEAD_SIZE:
                head += chunk[: HEAD_SIZE - session.offset - len(head)]
            buffer += chunk
            while len(buffer) >= S3_PART_SIZE:
                piece = bytes(memoryview(buffer)[:S3_PART_SIZE])
                parts.append(self._upload_part(session, number, part_offset, piece))
                number += 1
                part_offset += S3_PART_SIZE
                del buffer[:S3_PART_SIZE]
                earlier = 0
        if head:
            self._save_head(session, bytes(head))
        at_end = session.length is not None and session.offset + reader.size == session.length
        key = ""
        # A part needs 5 MiB unless it is the last; the buffer starts where the
        # parts end whenever it can become one (pending bytes were taken).
        if buffer and (len(buffer) >= S3_MIN_PART_SIZE or at_end):
            parts.append(self._upload_part(session, number, part_offset, bytes(buffer)))
            earlier = 0
        elif len(buffer) > earlier:
            # A fresh key: no existence check (``Storage.save``'s HEAD) needed.
            key = f"{session_prefix(session.id)}/{uuid4().hex}"
            self.client.put_object(
                Bucket=self.bucket, Key=self._name(key), Body=bytes(buffer[earlier:])
            )
        consumed = tuple(pending.keys) if take_pending and parts else ()
        return Stored(key=key, s3_parts=tuple(parts), consumed=consumed)

    def _ensure_multipart(self, session: UploadSession) -> None:
        """Start the final object's multipart upload with the upload's first bytes."""
        if session.s3_upload_id:
            return
        key = generate_storage_key()
        name = self._name(key)
        params = self.storage._get_write_parameters(name)
        started = self.client.create_multipart_upload(Bucket=self.bucket, Key=name, **params)
        session.s3_upload_id = started["UploadId"]
        session.s3_key = key
        UploadSession.objects.filter(id=session.id).update(
            s3_upload_id=session.s3_upload_id, s3_key=key
        )

    def _save_head(self, session: UploadSession, head: bytes) -> None:
        """The upload's first bytes so far, for the type check at the end (nothing is read back)."""
        session.head = bytes(session.head or b"")[: session.offset] + head
        UploadSession.objects.filter(id=session.id).update(head=session.head)

    def _upload_part(self, session: UploadSession, number: int, offset: int, data: bytes) -> S3Part:
        answer = self.client.upload_part(
            Bucket=self.bucket,
            Key=self._name(session.s3_key),
            UploadId=session.s3_upload_id,
            PartNumber=number,
            Body=data,
        )
        return (number, str(answer["ETag"]), len(data), offset)

    def seal(self, session: UploadSession) -> None:
        """A partial upload's multipart upload becomes its object, its one part from now on.

        Concatenation then reads the partial uploads' objects as on any object
        storage (a copy of their bytes: docs/tus.md, "S3").
        """
        if not session.s3_upload_id:
            return
        pending = _pending(session)
        self._complete(session)
        with transaction.atomic():
            UploadPart.objects.filter(session=session).delete()
            UploadPart.objects.create(
                session=session,
                number=1,
                offset=0,
                size=session.length or 0,
                storage_key=session.s3_key,
            )
            UploadSession.objects.filter(id=session.id).update(s3_upload_id="")
        session.s3_upload_id = ""
        delete_objects(pending.keys)

    def read_head(self, keys: Sequence[str], *, session: UploadSession | None = None) -> bytes:
        if session is None or not session.s3_upload_id:
            return super().read_head(keys)
        saved = UploadSession.objects.filter(id=session.id).values_list("head", flat=True).first()
        return bytes(saved or b"")[:HEAD_SIZE]

    def assemble(
        self,
        part_keys: Sequence[str],
        *,
        key: str,
        known_sha256: str | None = None,
        session: UploadSession | None = None,
    ) -> Assembled:
        """Complete the upload's multipart upload; other uploads (concatenations) are copied."""
        if session is None or not session.s3_upload_id:
            return super().assemble(part_keys, key=key, known_sha256=known_sha256)
        size = self._complete(session)
        digest = known_sha256
        if digest is None:
            # No saved hash to resume (e.g. a state from another OpenSSL): read it once.
            with self._reading([session.s3_key]) as (reader, sha256):
                reader.drain()
            digest = sha256.hexdigest()
        return Assembled(key=session.s3_key, size=size, sha256=digest, multipart=True)

    def _complete(self, session: UploadSession) -> int:
        """CompleteMultipartUpload with the recorded parts in order; the object's size.

        Bytes still waiting in small objects are the upload's end, so they go
        up as its last part first. Completing twice (a finalisation that broke
        off after it) finds the object already there.
        """
        pending = _pending(session)
        parts = _recorded_parts(session)
        if pending.keys:
            data = bytearray()
            for key in pending.keys:
                with self.storage.open(key, "rb") as fh:
                    data += fh.read()
            parts.append(
                self._upload_part(session, pending.next_number, pending.flushed_end, bytes(data))
            )
        name = self._name(session.s3_key)
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=name,
                UploadId=session.s3_upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": n, "ETag": etag} for n, etag, _, _ in parts]
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise
            return int(self.client.head_object(Bucket=self.bucket, Key=name)["ContentLength"])
        return sum(size for _, _, size, _ in parts)

    def unassemble(self, part_keys: Sequence[str], assembled: Assembled) -> None:
        if assembled.multipart:
            # The completed object is all there is: it stays under the
            # session's key for the next finalisation, or goes with ``purge``.
            return
        super().unassemble(part_keys, assembled)

    def purge(self, session_ids: Sequence[UUID]) -> int:
        """Also abort the sessions' multipart uploads and delete objects no file kept."""
        uploads = list(
            UploadSession.objects.filter(id__in=session_ids)
            .exclude(s3_upload_id="")
            .values_list("id", "s3_upload_id", "s3_key", "file__storage_key")
        )
        for session_id, upload_id, key, file_key in uploads:
            if key == file_key:
                continue  # completed into the session's file
            try:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self._name(key), UploadId=upload_id
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                    logger.exception("Could not abort the multipart upload of %s", session_id)
                    continue
            if not delete_objects([key]):
                UploadSession.objects.filter(id=session_id).update(s3_upload_id="")
        return super().purge(session_ids)


@dataclass(frozen=True)
class _Pending:
    """Where an S3 upload stands: its next part, and the small objects not yet in a part."""

    next_number: int
    flushed_end: int  # the offset up to which parts hold the bytes
    keys: list[str]
    size: int


_PENDING = """
SELECT storage_key, s3_parts FROM portal_uploadpart
WHERE session_id = %(session)s AND number >= COALESCE(
    (SELECT MAX(number) FROM portal_uploadpart
     WHERE session_id = %(session)s AND jsonb_array_length(COALESCE(s3_parts, '[]')) > 0), 0)
ORDER BY number
"""


def _pending(session: UploadSession) -> _Pending:
    """One query: the rows from the last PATCH that uploaded parts on."""
    with connection.cursor() as cursor:
        cursor.execute(_PENDING, {"session": session.id})
        rows = cursor.fetchall()
    next_number, flushed_end = 1, 0
    if rows and rows[0][1]:
        number, _, size, offset = _as_parts(rows[0][1])[-1]
        next_number, flushed_end = number + 1, offset + size
    keys = [key for key, _ in rows if key]
    return _Pending(
        next_number=next_number,
        flushed_end=flushed_end,
        keys=keys,
        size=session.offset - flushed_end,
    )


def _as_parts(value: object) -> list[S3Part]:
    raw = json.loads(value) if isinstance(value, str) else value
    return [(int(n), str(e), int(s), int(o)) for n, e, s, o in raw or []]  # type: ignore[union-attr]


def _recorded_parts(session: UploadSession) -> list[S3Part]:
    """Every recorded part of the session's multipart upload, by number."""
    rows = UploadPart.objects.filter(session=session).values_list("s3_parts", flat=True)
    return sorted(part for row in rows for part in _as_parts(row))


class LocalPartStore(PartStore):
    """One data file per upload, each body written at its offset; assembly is a rename."""

    def data_file_key(self, session_id: UUID) -> str:
        return f"{session_prefix(session_id)}/data"

    def _store(self, *, session: UploadSession, reader: HashingReader, limit: int) -> Stored:
        # What is past the recorded offset (left by a request that died
        # before recording it) is cut off first.
        key = self.data_file_key(session.id)
        path = self.storage.path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644), "wb", buffering=0) as fh:
            fh.truncate(session.offset)
            fh.seek(session.offset)
            for piece in reader.pieces():
                _write_all(fh, piece)
        # The offset only moves with a part row, so past 0 the file has one.
        return Stored(key=key, known=session.offset > 0)

    def discard(self, *, session_id: UUID, key: str, offset: int) -> None:
        if key != self.data_file_key(session_id):
            delete_objects([key])
            return
        with suppress(FileNotFoundError), open(self.storage.path(key), "r+b") as fh:
            fh.truncate(offset)

    def assemble(
        self,
        part_keys: Sequence[str],
        *,
        key: str,
        known_sha256: str | None = None,
        session: UploadSession | None = None,
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


def _write_all(fh: IO[bytes], piece: memoryview) -> None:
    """All of ``piece`` (an unbuffered file may write less than it was given)."""
    while piece:
        written = fh.write(piece) or 0
        piece = piece[written:]


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
    if is_s3_storage(storage):
        return S3PartStore(storage)
    return LocalPartStore(storage) if has_local_paths(storage) else ObjectPartStore(storage)
