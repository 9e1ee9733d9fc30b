"""Simple uploads straight from the multipart body into storage, no spool file.

Django's default upload handlers write a file part to ``/tmp/tmp*.upload.bin``
(over 2.5 MB) before the view runs, and only then could the service copy it
into storage: every byte was written twice, and a process killed meanwhile
left the spool file behind with nothing that names it (4 killed uploads left
75 MB in ``/tmp``). ``StorageUploadHandler`` instead receives the part's
bytes as they are read from the socket and writes them under the storage key
of an ``uploading`` record created when the first bytes (the type check's
head) are in. What a killed process leaves is that record and its partial
object, which the stale sweep removes (``cleanup_stale_uploading_files``).

The body is parsed by ``multipart_body`` (the handler takes over Django's
parsing through ``handle_raw_input``), read 1 MiB at a time from a client
that keeps up, in smaller reads from a slow one.

The bytes are written on a helper thread fed through a small bounded pipe,
so that hashing and writing (one core) run beside reading and parsing the
body (the other): the request thread counts, checks the size limit and keeps
the record fresh, and nothing on the helper thread touches the database. On
local storage (``FileSystemStorage``) the helper hashes each piece and writes
it to the file as it arrived; other backends pull (``Storage.save`` reads a
file object), so there it reads the pipe through ``upload_file_write``.
Measured in ``bench/simple_upload.py``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import deque
from io import BytesIO
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, QueryDict
from django.utils.datastructures import MultiValueDict

from common.exceptions import ApplicationError
from common.services.connections import release_connection
from common.services.text import text_is_storable
from portal.models import UploadFile
from portal.services import uploads
from portal.services.hashing import HEAD_SIZE
from portal.services.multipart_body import READ_SIZE, parse_multipart
from portal.services.stored_objects import delete_objects
from portal.storage import file_storage

logger = logging.getLogger(__name__)

# Pieces (up to READ_SIZE each) in flight between the parser and the writer:
# enough to ride out a slow write, and memory stays a few MiB per upload.
PIPE_CAPACITY = 4
# The writer gives up when no byte arrives for this long (the request thread is
# gone without telling it), so a thread never waits forever.
WRITER_IDLE_SECONDS = 600


class _Aborted(Exception):
    pass


class _Pipe:
    """A bounded byte pipe: the request thread puts chunks, the writer reads them."""

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._buffer = b""
        self._closed = False
        self._aborted = False
        self.reader_gone = False

    def put(self, data: bytes) -> bool:
        """False when the writer has stopped (its error says why)."""
        with self._cond:
            while len(self._chunks) >= PIPE_CAPACITY and not self.reader_gone:
                self._cond.wait(1.0)
            if self.reader_gone:
                return False
            self._chunks.append(data)
            self._cond.notify_all()
            return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def abort(self) -> None:
        with self._cond:
            self._aborted = True
            self._cond.notify_all()

    def take(self) -> bytes:
        """The next piece whole, as it was put (``b""`` at the end)."""
        with self._cond:
            self._wait_for_data()
            if self._buffer:
                data, self._buffer = self._buffer, b""
            elif self._chunks:
                data = self._chunks.popleft()
                self._cond.notify_all()
            else:
                data = b""
            return data

    def read(self, n: int = -1) -> bytes:
        if n == 0:
            return b""
        with self._cond:
            self._wait_for_data()
            if not self._buffer and self._chunks:
                self._buffer = self._chunks.popleft()
                self._cond.notify_all()
            if n is None or n < 0 or n >= len(self._buffer):
                data, self._buffer = self._buffer, b""
            else:
                data, self._buffer = self._buffer[:n], self._buffer[n:]
            return data

    def _wait_for_data(self) -> None:
        """Until there is a piece or the writer closed; raises when aborted."""
        deadline = time.monotonic() + WRITER_IDLE_SECONDS
        while not self._buffer and not self._chunks:
            if self._aborted:
                raise _Aborted
            if self._closed:
                return
            if not self._cond.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError("no upload data arrived in time")
        if self._aborted:
            raise _Aborted

    def stop_reading(self) -> None:
        with self._cond:
            self.reader_gone = True
            self._cond.notify_all()


if TYPE_CHECKING:
    _UploadedFile = UploadedFile[bytes]
else:
    _UploadedFile = UploadedFile


class StreamedUpload(_UploadedFile):
    """The ``file`` part of a request, as it streams into storage.

    Behaves like an ``UploadedFile`` for forms (``name``, ``size``,
    ``content_type``); ``upload_file_create_streamed`` turns it into a stored
    (or failed) file. If nothing does (the view refused the request), closing
    it deletes the object and the ``uploading`` record: Django closes every
    uploaded file at the end of the response.
    """

    def __init__(
        self,
        *,
        owner: Any,
        name: str,
        content_type: str | None,
        charset: str | None,
        body_length: int | None = None,
    ):
        super().__init__(BytesIO(), name=name, content_type=content_type, size=0, charset=charset)
        self.owner = owner
        self.body_length = body_length
        self.head = b""
        self.refusal: ApplicationError | None = None
        self.too_large = False
        self.record: UploadFile | None = None
        self.written: uploads.Written | None = None
        self.write_error: BaseException | None = None
        self.claimed = False
        self._max_size = int(settings.FILE_UPLOAD_MAX_SIZE)
        self._pipe: _Pipe | None = None
        self._writer: threading.Thread | None = None
        self._beat_at = time.monotonic() + uploads.HEARTBEAT_SECONDS

    # --- fed by the upload handler, on the request thread ---------------------

    def receive(self, data: bytes) -> None:
        if self.refusal is not None or self.too_large or self.write_error is not None:
            return  # the rest of a refused or broken upload is read and dropped
        self.size = (self.size or 0) + len(data)
        if self.size > self._max_size:
            self.too_large = True
            self._stop_writer(abort=True)
            return
        if self.record is None:
            self.head += data
            if len(self.head) >= HEAD_SIZE:
                self._start()
            return
        self._feed(data)

    def complete(self) -> None:
        if self.refusal is None and not self.too_large and self.record is None:
            self._start()  # a file shorter than the head
        if self._writer is not None and not self.too_large:
            self._stop_writer(abort=False)

    def _start(self) -> None:
        buffered, self.head = self.head, self.head[:HEAD_SIZE]
        try:
            self.record = uploads.upload_file_reserve(
                owner=self.owner,
                head=self.head,
                filename=self.name or "",
                declared=self._declared(),
                body_length=self.body_length,
            )
        except ApplicationError as exc:
            # Refused by its name or its first bytes: no record, no bytes yet;
            # the service records the refusal once it knows the batch.
            self.refusal = exc
            return
        self.content_type = self.record.content_type
        release_connection()  # the rest of the body arrives at the client's pace
        self._pipe = _Pipe()
        self._writer = threading.Thread(
            target=self._write, name=f"upload-{self.record.id}", daemon=True
        )
        self._writer.start()
        self._feed(buffered)

    def _declared(self) -> str | None:
        declared = self.content_type
        return declared if declared and text_is_storable(declared) else None

    def _write(self) -> None:
        assert self.record is not None and self._pipe is not None
        try:
            storage = file_storage()
            if isinstance(storage, FileSystemStorage):
                self.written = _write_file(storage, key=self.record.storage_key, pipe=self._pipe)
            else:
                self.written = uploads.upload_file_write(
                    key=self.record.storage_key,
                    stream=self._pipe,
                    content_type=self.record.content_type,
                )
        except BaseException as exc:
            self.write_error = exc
        finally:
            self._pipe.stop_reading()

    def _feed(self, data: bytes) -> None:
        assert self._pipe is not None and self.record is not None
        if not self._pipe.put(data):
            self._stop_writer(abort=True)
            return
        if time.monotonic() >= self._beat_at:
            self._beat_at = time.monotonic() + uploads.HEARTBEAT_SECONDS
            uploads.upload_file_touch(self.record)
            release_connection()

    def _stop_writer(self, *, abort: bool) -> None:
        if self._pipe is None or self._writer is None:
            return
        if abort:
            self._pipe.abort()
        else:
            self._pipe.close()
        self._writer.join()
        self._writer = None

    # --- the end of the request -------------------------------------------------

    def discard(self) -> None:
        """Undo an upload nobody finished: abort the write, drop object and record."""
        self._stop_writer(abort=True)
        if self.record is not None and not self.claimed:
            self.claimed = True
            uploads.upload_file_discard(self.record)

    def close(self) -> None:
        self.discard()
        super().close()


def _write_file(storage: FileSystemStorage, *, key: str, pipe: _Pipe) -> uploads.Written:
    """``FileSystemStorage.save``, pushed: each piece hashed and written as it came.

    ``Storage.save`` pulls its content through ``read(n)``, which would cut
    and join the parser's pieces into its own sizes, copying them again.
    The file is created as ``save`` creates it (exclusively, with the
    storage's permission modes); a failed write leaves no file.
    """
    path = storage.path(key)
    directory = os.path.dirname(path)
    if storage.directory_permissions_mode is None:
        os.makedirs(directory, exist_ok=True)
    else:
        os.makedirs(directory, storage.directory_permissions_mode, exist_ok=True)
    sha256 = hashlib.sha256()
    size = 0
    try:
        # "x": never over an existing object (keys are fresh UUIDs anyway).
        with open(path, "xb") as fh:
            while piece := pipe.take():
                sha256.update(piece)  # releases the GIL: the parser runs meanwhile
                fh.write(piece)  # larger than the buffer: written straight, no copy
                size += len(piece)
        if storage.file_permissions_mode is not None:
            os.chmod(path, storage.file_permissions_mode)
    except BaseException:
        delete_objects([key])
        raise
    return uploads.Written(key=key, size=size, sha256=sha256.hexdigest())


class StorageUploadHandler(FileUploadHandler):
    """Streams the multipart part ``file`` into storage; other file parts are dropped."""

    chunk_size = READ_SIZE

    def __init__(self, request: HttpRequest | None = None, *, owner: Any, field: str = "file"):
        super().__init__(request)
        self.owner = owner
        self.field = field
        self.upload: StreamedUpload | None = None
        self._current: StreamedUpload | None = None
        self._body_length: int | None = None

    def new_file(
        self,
        field_name: str,
        file_name: str,
        content_type: str,
        content_length: int | None,
        charset: str | None = None,
        content_type_extra: dict[str, Any] | None = None,
    ) -> None:
        super().new_file(
            field_name, file_name, content_type, content_length, charset, content_type_extra
        )
        self._current = None
        if field_name == self.field and self.upload is None:
            self.upload = self._current = StreamedUpload(
                owner=self.owner,
                name=file_name,
                content_type=content_type,
                charset=charset,
                body_length=self._body_length,
            )

    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],
        content_length: int,
        boundary: str | bytes,
        encoding: str | None = None,
    ) -> tuple[QueryDict, MultiValueDict[str, Any]]:
        """Parse the whole body here (``multipart_body``) instead of in Django's parser.

        Django passes the boundary as ``bytes`` (its stubs say ``str``).
        """
        self._body_length = content_length
        return parse_multipart(
            stream=input_data,
            boundary=boundary if isinstance(boundary, bytes) else boundary.encode("ascii"),
            content_length=content_length,
            encoding=encoding,
            handler=self,
        )

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        if self._current is not None:
            self._current.receive(raw_data)
        return None  # consumed: no other handler spools it

    def file_complete(self, file_size: int) -> StreamedUpload | None:
        current, self._current = self._current, None
        if current is not None:
            current.complete()
        return current

    def abort(self) -> None:
        if self.upload is not None:
            self.upload.discard()


def parse_streaming_upload(request: HttpRequest, *, owner: Any) -> None:
    """Parse the request's multipart body now, streaming its ``file`` part to storage.

    Call before anything reads ``request.POST``/``request.FILES``. If the body
    breaks off (client gone, malformed multipart), what was written is undone.
    """
    handler = StorageUploadHandler(request, owner=owner)
    request.upload_handlers = [handler]
    release_connection()  # the body arrives at the client's pace
    try:
        request.FILES  # noqa: B018 - parses the body
    except BaseException:
        handler.abort()
        raise


# Room for the multipart framing and the small form fields around the file.
MULTIPART_OVERHEAD = 64 * 1024


def declared_file_size(request: HttpRequest) -> int:
    """The least the file part of this multipart request holds: its length less the framing.

    What a quota can be checked against before the body is read; the exact
    size is checked when the upload is recorded.
    """
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0
    return max(0, length - MULTIPART_OVERHEAD)
