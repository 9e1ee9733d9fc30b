"""Files: stream into storage, record, delete.

The bytes are written before any transaction opens (no storage I/O while
holding locks); the record, the ``file.stored`` event and the batch counters
are then written in one transaction. If that transaction fails the object is
removed again, so storage never keeps bytes that no record points to.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import logging
import mimetypes
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import puremagic
from django.conf import settings
from django.core.files.base import File
from django.db import transaction
from django.utils import timezone

from common.exceptions import (
    ConflictError,
    PayloadTooLargeError,
    PermissionDeniedError,
    UnsupportedMediaTypeError,
)
from common.metrics.instruments import record_upload_stored
from common.services.emit import emit_event
from common.services.text import clean_text
from portal.models import UploadBatch, UploadFile
from portal.services.batches import batch_check_open, batch_record_file_ended, clean_metadata
from portal.services.payloads import file_event_payload
from portal.storage import file_storage, generate_storage_key

logger = logging.getLogger(__name__)

HEAD_SIZE = 8192
CHUNK_SIZE = 1024 * 1024
MAX_FILENAME_LENGTH = 255
# puremagic scores short signatures (one or two bytes) below this; they match
# plenty of ordinary text and would make the content check refuse it.
MIN_MAGIC_CONFIDENCE = 0.3
OCTET_STREAM = "application/octet-stream"
# A streaming upload touches its ``uploading`` record this often, so the stale
# sweep (``UPLOAD_STALE_MINUTES``) never takes a slow but living upload.
HEARTBEAT_SECONDS = 60


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class _TooLarge(Exception):
    pass


class _LimitedHashingReader:
    """A non-seekable file object over the caller's stream for ``Storage.save``.

    Counts and hashes what passes through, and raises as soon as more than
    ``max_size`` bytes have been read, so an oversized upload is never read
    (or stored) in full.
    """

    def __init__(
        self,
        stream: Readable,
        *,
        head: bytes,
        max_size: int,
        heartbeat: Callable[[], None] | None = None,
    ):
        self._stream = stream
        self._pending = head
        self._max_size = max_size
        self._hash = hashlib.sha256()
        self._heartbeat = heartbeat
        self._beat_at = time.monotonic() + HEARTBEAT_SECONDS
        self.size = 0
        self.closed = False

    def _take(self, n: int) -> bytes:
        if self._pending:
            data, self._pending = self._pending[:n], self._pending[n:]
        else:
            # Never ask for more than one byte past the limit.
            data = self._stream.read(min(n, self._max_size + 1 - self.size))
            if isinstance(data, str):
                data = data.encode()
        self.size += len(data)
        if self.size > self._max_size:
            raise _TooLarge
        self._hash.update(data)
        if self._heartbeat is not None and time.monotonic() >= self._beat_at:
            self._beat_at = time.monotonic() + HEARTBEAT_SECONDS
            self._heartbeat()
        return data

    def read(self, n: int | None = -1) -> bytes:
        if n is not None and n >= 0:
            return self._take(max(n, 0)) if n else b""
        parts = []
        while chunk := self._take(CHUNK_SIZE):
            parts.append(chunk)
        return b"".join(parts)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def clean_filename(filename: Any) -> str:
    """The original name as data: storable text, at most 255 chars.

    It is never used as a path, so separators and dots stay as given. A name
    with NUL or an unpaired surrogate is refused (400 naming ``filename``)
    rather than silently changed. A long name is cut in the middle of its
    stem so the extension survives.
    """
    name = clean_text(str(filename or ""), field="filename")
    if not name.strip():
        name = "unnamed"
    if len(name) > MAX_FILENAME_LENGTH:
        stem, dot, ext = name.rpartition(".")
        if stem and dot and 0 < len(ext) <= 16:
            name = stem[: MAX_FILENAME_LENGTH - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_FILENAME_LENGTH]
    return name


def _normalise_type(value: str | None) -> str | None:
    if not value or not isinstance(value, str):
        return None
    value = value.split(";", 1)[0].strip().lower()
    major, slash, minor = value.partition("/")
    if not slash or not major or not minor or len(value) > 255:
        return None
    return value


def _detect_from_content(head: bytes, ext_type: str | None) -> str | None:
    if not head:
        return None
    try:
        matches = puremagic.magic_string(head)
    except puremagic.PureError:
        return None
    candidates = [m for m in matches if m.mime_type and m.confidence >= MIN_MAGIC_CONFIDENCE]
    if not candidates:
        return None
    # Container formats (zip → docx/xlsx/...) match several types: the
    # extension picks among what the content allows.
    if ext_type and any(m.mime_type == ext_type for m in candidates):
        return ext_type
    best = max(candidates, key=lambda m: m.confidence)
    return _normalise_type(best.mime_type)


def _type_allowed(content_type: str, allowed: list[str]) -> bool:
    for pattern in allowed:
        pattern = pattern.strip().lower()
        if pattern in ("*", "*/*", content_type):
            return True
        if pattern.endswith("/*") and content_type.startswith(pattern[:-1]):
            return True
    return False


# Types whose files are text: recognised by being valid text of their kind,
# since text carries no signature.
_TEXT_APPLICATION_TYPES = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/xml",
        "application/javascript",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/sql",
    }
)
# C0 controls that do not occur in text files (tab, newlines, form feed and
# ESC, used by coloured logs, do).
_BINARY_CONTROLS = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")


def is_text_type(content_type: str) -> bool:
    major, _, minor = content_type.partition("/")
    return (
        major == "text"
        or content_type in _TEXT_APPLICATION_TYPES
        or minor.endswith(("+json", "+xml"))
    )


def _head_text(head: bytes, *, complete: bool) -> str | None:
    """The head as text, or None if it is not UTF-8 text (a cut last character is fine)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        text = decoder.decode(head, final=complete)
    except UnicodeDecodeError:
        return None
    return None if _BINARY_CONTROLS.search(text) else text


def _is_valid_text_of(content_type: str, head: bytes, *, complete: bool) -> bool:
    """Whether the head is valid text of ``content_type``, as far as a head can show."""
    text = _head_text(head, complete=complete)
    if text is None:
        return False
    minor = content_type.partition("/")[2]
    if content_type == "application/x-ndjson":
        # A cut last line cannot be parsed; judge the complete ones.
        lines = text.splitlines() if complete else text.rpartition("\n")[0].splitlines()
        try:
            for line in lines:
                if line.strip():
                    json.loads(line)
        except ValueError:
            return False
        return True
    if content_type == "application/json" or minor.endswith("+json"):
        if not complete:
            return text.lstrip()[:1] in ("{", "[")
        try:
            json.loads(text)
        except ValueError:
            return False
        return True
    if minor == "xml" or minor.endswith("+xml"):
        return text.lstrip()[:1] == "<"
    if content_type == "text/csv" and complete:
        try:
            for _row in csv.reader(io.StringIO(text), strict=True):
                pass
        except csv.Error:
            return False
    return True


def _refuse(content_type: str, allowed: list[str], message: str) -> UnsupportedMediaTypeError:
    return UnsupportedMediaTypeError(
        message, details={"content_type": content_type, "allowed_types": allowed}
    )


def upload_file_content_type(*, head: bytes, filename: str, declared: str | None) -> str:
    """The file's type, from its first bytes, its extension and (last) the client.

    With ``FILE_UPLOAD_ALLOWED_TYPES`` set, the name and the declared type
    never suffice: the content must be recognised (by its signature) as an
    allowed type, or, for a text type, be valid text of that kind (UTF-8,
    CSV that parses, JSON that parses as far as the head allows). An
    extension naming a refused type is refused whatever the content, and
    content of one type under a name of another (PHP or plain text called
    ``a.png``) is refused. An empty file is empty text: accepted only as an
    allowed text type that may be empty (``text/plain``, ``text/csv``).
    ``head`` is the file's first ``HEAD_SIZE`` bytes, all of it if shorter.
    """
    ext_type = _normalise_type(mimetypes.guess_type(filename, strict=False)[0])
    if ext_type == OCTET_STREAM:
        ext_type = None  # ".bin" says nothing; let the client's declared type speak
    declared_type = _normalise_type(declared)
    if declared_type == OCTET_STREAM:
        declared_type = None
    detected = _detect_from_content(head, ext_type)
    content_type = detected or ext_type or declared_type or OCTET_STREAM

    allowed = [t for t in (getattr(settings, "FILE_UPLOAD_ALLOWED_TYPES", None) or []) if t]
    if not allowed or _type_allowed("*/*", allowed):
        return content_type
    if ext_type is not None and not _type_allowed(ext_type, allowed):
        raise _refuse(ext_type, allowed, f"Files of type {ext_type} are not accepted.")
    if detected is not None:
        if not _type_allowed(detected, allowed):
            raise _refuse(detected, allowed, f"Files of type {detected} are not accepted.")
        return detected
    # No signature: only a text type can be recognised, by its content.
    claimed = ext_type or declared_type or "text/plain"
    if not _type_allowed(claimed, allowed):
        raise _refuse(claimed, allowed, f"Files of type {claimed} are not accepted.")
    if not is_text_type(claimed):
        raise _refuse(
            claimed, allowed, f"The content is not recognised as {claimed}; it is not accepted."
        )
    if not _is_valid_text_of(claimed, head, complete=len(head) < HEAD_SIZE):
        raise _refuse(claimed, allowed, f"The content is not valid {claimed}; it is not accepted.")
    return claimed


def _read_head(stream: Readable) -> bytes:
    """Up to HEAD_SIZE bytes, tolerating short reads from sockets."""
    parts: list[bytes] = []
    size = 0
    while size < HEAD_SIZE:
        data = stream.read(HEAD_SIZE - size)
        if not data:
            break
        if isinstance(data, str):
            data = data.encode()
        parts.append(data)
        size += len(data)
    return b"".join(parts)


@dataclass(frozen=True)
class Written:
    key: str
    size: int
    sha256: str


def _write_to_storage(
    *,
    key: str,
    stream: Readable,
    head: bytes,
    content_type: str,
    heartbeat: Callable[[], None] | None = None,
) -> Written:
    max_size = int(settings.FILE_UPLOAD_MAX_SIZE)
    if len(head) > max_size:
        raise _TooLarge
    storage = file_storage()
    reader = _LimitedHashingReader(stream, head=head, max_size=max_size, heartbeat=heartbeat)
    content = File(reader, name="upload")
    content.content_type = content_type  # stored as the S3 object's Content-Type
    try:
        key = storage.save(key, content)
    except BaseException:
        # A partial object (local file, or nothing on S3) must not stay behind.
        _delete_object_quietly(key)
        raise
    return Written(key=key, size=reader.size, sha256=reader.sha256)


def _delete_object_quietly(key: str) -> None:
    try:
        file_storage().delete(key)
    except Exception:
        logger.exception("Could not remove object %s", key)


def upload_file_record_failed(
    *,
    owner: Any,
    filename: str,
    content_type: str,
    batch: UploadBatch | None,
    metadata: dict[str, Any],
    error_message: str,
    size: int = 0,
) -> UploadFile:
    """A refused file: a failed record for the owner's history, no bytes, no event."""
    with transaction.atomic(durable=True):
        file = UploadFile.objects.create(
            owner=owner,
            batch=batch,
            filename=filename,
            content_type=content_type,
            size=size,
            metadata=metadata,
            status=UploadFile.Status.FAILED,
            error_message=error_message,
        )
        if batch is not None:
            batch_record_file_ended(batch_id=batch.pk, stored=False)
    logger.info("Upload of %r refused: %s (file %s)", filename, error_message, file.id)
    return file


def upload_file_create(
    *,
    owner: Any,
    stream: Readable,
    filename: str,
    content_type: str | None = None,
    batch: UploadBatch | None = None,
    metadata: dict[str, Any] | None = None,
) -> UploadFile:
    """Stream an upload into storage and record it as stored.

    Size and type are enforced while reading; a refused upload is recorded
    as failed (so the owner and the batch see it) and raises the matching
    ``ApplicationError`` after removing whatever bytes were written.
    """
    filename = clean_filename(filename)
    metadata = clean_metadata(metadata)
    if batch is not None:
        batch_check_open(batch=batch, owner=owner)

    head = _read_head(stream)
    try:
        detected_type = upload_file_content_type(
            head=head, filename=filename, declared=content_type
        )
    except UnsupportedMediaTypeError as exc:
        failed = upload_file_record_failed(
            owner=owner,
            filename=filename,
            content_type=exc.details.get("content_type", ""),
            batch=batch,
            metadata=metadata,
            error_message=exc.message,
        )
        exc.details["file_id"] = str(failed.id)
        raise

    file = _reserve(
        owner=owner, batch=batch, filename=filename, content_type=detected_type, metadata=metadata
    )
    try:
        written = _write_to_storage(
            key=file.storage_key,
            stream=stream,
            head=head,
            content_type=detected_type,
            heartbeat=lambda: upload_file_touch(file),
        )
    except _TooLarge:
        limit = int(settings.FILE_UPLOAD_MAX_SIZE)
        message = f"The file is larger than the limit of {limit} bytes."
        _fail_reserved(file, message)
        raise PayloadTooLargeError(
            message, details={"max_size": limit, "file_id": str(file.id)}
        ) from None
    except Exception as exc:
        if not _still_reserved(file):
            # The stale sweep took it (and its object) while it was written.
            raise _abandoned(file) from exc
        _forget_reserved(file)
        raise
    except BaseException:
        _forget_reserved(file)
        raise

    return _finish_reserved(file, written)


def _reserve(
    *,
    owner: Any,
    filename: str,
    content_type: str,
    batch: UploadBatch | None = None,
    metadata: dict[str, Any] | None = None,
) -> UploadFile:
    # The record exists before the first byte is written: a process killed
    # mid-write leaves an ``uploading`` row naming the object, which the stale
    # sweep deletes with it, never an object nobody knows about.
    with transaction.atomic(durable=True):
        return UploadFile.objects.create(
            owner=owner,
            batch=batch,
            storage_key=generate_storage_key(),
            filename=filename,
            content_type=content_type,
            metadata=metadata or {},
            status=UploadFile.Status.UPLOADING,
        )


def upload_file_reserve(
    *, owner: Any, head: bytes, filename: str, declared: str | None
) -> UploadFile:
    """The ``uploading`` record a streamed upload writes under, once its head is known.

    Raises the refusal (bad name, refused type) before any record or byte
    exists. Batch and metadata are set when the upload is finished
    (``upload_file_create_streamed``): in a multipart body they may come
    after the file.
    """
    filename = clean_filename(filename)
    content_type = upload_file_content_type(head=head, filename=filename, declared=declared)
    return _reserve(owner=owner, filename=filename, content_type=content_type)


def upload_file_write(*, key: str, stream: Readable, content_type: str) -> Written:
    """Write a stream to ``key`` in storage, hashing it; no database access.

    A failed write leaves no object behind.
    """
    return _write_to_storage(key=key, stream=stream, head=b"", content_type=content_type)


def upload_file_discard(file: UploadFile) -> None:
    """Undo a reserved upload that will not be finished: its object, then its record."""
    _delete_object_quietly(file.storage_key)
    _forget_reserved(file)


def upload_file_create_streamed(
    *,
    owner: Any,
    upload: Any,
    batch: UploadBatch | None = None,
    metadata: dict[str, Any] | None = None,
) -> UploadFile:
    """Finish a simple upload whose bytes already streamed into storage.

    ``upload`` is the ``StreamedUpload`` the request's upload handler made
    (``portal.services.streaming``). Same outcomes as ``upload_file_create``:
    a stored file with its event, or a failed record and the refusal; if
    this raises, the upload's object and reservation are removed when the
    request ends (``StreamedUpload.close``).
    """
    metadata = clean_metadata(metadata)
    if batch is not None:
        batch_check_open(batch=batch, owner=owner)
    if upload.refusal is not None:
        exc = upload.refusal
        if isinstance(exc, UnsupportedMediaTypeError):
            failed = upload_file_record_failed(
                owner=owner,
                filename=clean_filename(upload.name),
                content_type=exc.details.get("content_type", ""),
                batch=batch,
                metadata=metadata,
                error_message=exc.message,
            )
            exc.details["file_id"] = str(failed.id)
        raise exc
    if upload.too_large:
        limit = int(settings.FILE_UPLOAD_MAX_SIZE)
        message = f"The file is larger than the limit of {limit} bytes."
        file = upload.record
        if file is None:  # over the limit within its first bytes
            file = upload_file_record_failed(
                owner=owner,
                filename=clean_filename(upload.name),
                content_type="",
                batch=batch,
                metadata=metadata,
                error_message=message,
            )
        else:
            upload.claimed = True
            file.batch = batch
            file.metadata = metadata
            _fail_reserved(file, message)
        raise PayloadTooLargeError(message, details={"max_size": limit, "file_id": str(file.id)})
    file = upload.record
    if upload.write_error is not None:
        if isinstance(upload.write_error, Exception) and not _still_reserved(file):
            raise _abandoned(file) from upload.write_error
        raise upload.write_error
    upload.claimed = True
    file.batch = batch
    file.metadata = metadata
    return _finish_reserved(file, upload.written)


def _finish_reserved(file: UploadFile, written: Written) -> UploadFile:
    """The bytes are in storage: mark the reserved record stored, or undo both."""
    try:
        with transaction.atomic(durable=True):
            _claim_reserved(file)
            stored = _record_stored(
                file, storage_key=written.key, size=written.size, sha256=written.sha256
            )
    except BaseException:
        _delete_object_quietly(written.key)
        _forget_reserved(file)
        raise
    # Counted once committed: a rolled-back file was never received.
    record_upload_stored(kind="simple", size=written.size)
    return stored


def _claim_reserved(file: UploadFile) -> None:
    """Lock the ``uploading`` record; fail if the stale sweep already removed it.

    Otherwise a stored record could point at an object the sweep deleted.
    """
    alive = (
        UploadFile.objects.select_for_update()
        .filter(pk=file.pk, status=UploadFile.Status.UPLOADING)
        .exists()
    )
    if not alive:
        raise _abandoned(file)


def _abandoned(file: UploadFile) -> ConflictError:
    return ConflictError(
        "The upload was idle for too long and has been removed; send it again.",
        code="upload_abandoned",
        details={"file_id": str(file.id)},
    )


def _still_reserved(file: UploadFile) -> bool:
    try:
        return UploadFile.objects.filter(pk=file.pk, status=UploadFile.Status.UPLOADING).exists()
    except Exception:
        return True  # cannot tell (database down): treat as the ordinary failure it is


def upload_file_touch(file: UploadFile) -> None:
    """Show the stale sweep that this upload is still streaming (best effort)."""
    try:
        UploadFile.objects.filter(pk=file.pk, status=UploadFile.Status.UPLOADING).update(
            updated_at=timezone.now()
        )
    except Exception:
        logger.warning("Could not touch the uploading record %s", file.id, exc_info=True)


def _fail_reserved(file: UploadFile, message: str) -> None:
    """A reserved upload refused while streaming: failed, no bytes, no event."""
    _delete_object_quietly(file.storage_key)
    with transaction.atomic(durable=True):
        file.status = UploadFile.Status.FAILED
        file.error_message = message
        file.storage_key = ""
        file.save(
            update_fields=[
                "status",
                "error_message",
                "storage_key",
                "batch",
                "metadata",
                "updated_at",
            ]
        )
        if file.batch_id is not None:
            batch_record_file_ended(batch_id=file.batch_id, stored=False)
    logger.info("Upload of %r refused: %s (file %s)", file.filename, message, file.id)


def _forget_reserved(file: UploadFile) -> None:
    """An upload that broke off (client gone, storage error): no record, as if never begun.

    Best effort: if the database is unreachable the ``uploading`` row stays and
    TTL cleanup removes it and its object later.
    """
    try:
        UploadFile.objects.filter(pk=file.pk, status=UploadFile.Status.UPLOADING).delete()
    except Exception:
        logger.exception("Could not remove the record of the broken upload %s", file.id)


def _record_stored(file: UploadFile, *, storage_key: str, size: int, sha256: str) -> UploadFile:
    """Mark ``file`` stored, count it in its batch, emit ``file.stored``.

    Runs in the caller's transaction.
    """
    now = timezone.now()
    ttl = timedelta(hours=int(getattr(settings, "FILE_UPLOAD_TTL_HOURS", 24)))
    file.storage_key = storage_key
    file.size = size
    file.sha256 = sha256
    file.status = UploadFile.Status.STORED
    file.stored_at = now
    file.expires_at = now + ttl
    file.save()
    if file.batch_id is not None:
        batch_record_file_ended(batch_id=file.batch_id, stored=True)
    emit_event(
        aggregate_type="file",
        aggregate_id=file.id,
        event_type="file.stored",
        payload=file_event_payload(file),
        idempotency_key=str(file.id),
    )
    logger.info("Stored file %s (%d bytes, %s)", file.id, size, file.content_type)
    return file


def upload_file_record_stored(
    *,
    owner: Any,
    storage_key: str,
    filename: str,
    content_type: str,
    size: int,
    sha256: str,
    batch: UploadBatch | None = None,
    metadata: dict[str, Any] | None = None,
) -> UploadFile:
    """Record bytes already in storage as a stored file and emit ``file.stored``.

    One transaction (joins the caller's, if any): the record, the event and
    the batch counters commit together or not at all. The caller owns the
    object and removes it if this raises.
    """
    with transaction.atomic():
        file = UploadFile(
            owner=owner,
            batch=batch,
            filename=clean_filename(filename),
            content_type=content_type,
            metadata=clean_metadata(metadata),
        )
        return _record_stored(file, storage_key=storage_key, size=size, sha256=sha256)


def upload_file_delete(*, file: UploadFile, actor: Any) -> None:
    """Delete a file for its owner or staff: the object first, then the record.

    In that order a crash leaves a record without bytes (which cleanup later
    removes), never bytes without a record. ``file.deleted`` is emitted for
    files that were stored (announced) and only by whoever deletes the row.
    """
    if file.owner_id != actor.pk and not actor.is_staff:
        raise PermissionDeniedError(
            "You may not delete this file.", details={"file_id": str(file.id)}
        )
    if file.storage_key:
        file_storage().delete(file.storage_key)
    reason = "owner" if file.owner_id == actor.pk else "staff"
    with transaction.atomic(durable=True):
        deleted, _ = UploadFile.objects.filter(pk=file.pk).delete()
        if deleted and file.status == UploadFile.Status.STORED:
            emit_event(
                aggregate_type="file",
                aggregate_id=file.id,
                event_type="file.deleted",
                payload=file_event_payload(file, with_download_url=False, reason=reason),
                idempotency_key=str(file.id),
            )
    logger.info("Deleted file %s (%s)", file.id, reason)
