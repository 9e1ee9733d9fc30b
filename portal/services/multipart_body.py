"""A ``multipart/form-data`` body parsed as it streams in, for Django's upload handlers.

Why not Django's ``MultiPartParser``: it reads the body in its handler's
``chunk_size`` and, for every piece, joins it to the previous piece's tail,
copies it to test for emptiness and slices it again before a handler sees it
(``BoundaryIter``); with the larger reads gunicorn's body reader needs to be
fast (1 MiB, below) those copies were a third of a simple upload's request
thread. The parser here is the ``multipart`` package (by the author of
Bottle; the replacement the Python documentation names for the removed
``cgi`` module): a sans-I/O push parser that hands on the bulk of a part as
the very ``bytes`` object it was given, with limits on part headers and
counts. Part names and file names are still read by Django's header parser,
so they come out as they did. Measured in ``bench/simple_upload.py``
(docs/portal.md, "Simple uploads over HTTP").

It runs inside Django's own parsing: an upload handler's ``handle_raw_input``
may return ``(POST, FILES)`` itself (Django's documented hook for taking
over), so ``request.POST``/``request.FILES`` and everything that reads them
(forms, the CSRF check, the API view) are unchanged. Django's request limits
(``DATA_UPLOAD_MAX_NUMBER_FIELDS``, ``DATA_UPLOAD_MAX_MEMORY_SIZE``,
``DATA_UPLOAD_MAX_NUMBER_FILES``) are applied here with Django's exceptions,
and a malformed body raises ``MultiPartParserError``, as before.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from time import monotonic
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import QueryDict
from django.http.multipartparser import MultiPartParserError
from django.utils.datastructures import MultiValueDict
from django.utils.encoding import force_str
from django.utils.http import parse_header_parameters
from multipart import MultipartError, MultipartSegment, PushMultipartParser

#: Body read size. gunicorn's body reader receives at most 1 MiB per
#: ``recv()`` and reassembles larger reads from 1 MiB steps (copying them
#: again); smaller reads make it slice its read-ahead buffer once per read
#: (a 45 MiB upload read 256 KiB at a time: 470 MB/s out of gunicorn, 1 MiB
#: at a time: 1 000 MB/s).
READ_SIZE = 1024 * 1024
#: Read size for a client slower than READ_SIZE a second. A read returns only
#: once it is full, so large reads from a slow client would hold pieces back
#: (and the upload's heartbeat with them: 1 MiB at 2 KB/s is 8 minutes) and
#: park up to 1 MiB per waiting thread in gunicorn's buffer.
SLOW_READ_SIZE = 64 * 1024
#: A part header line may carry a long file name (a 10 000-character name is
#: cut to 255 by ``clean_filename``, not refused here).
MAX_HEADER_SIZE = 64 * 1024
#: RFC 7578 parts have up to three headers.
MAX_HEADER_COUNT = 8
#: RFC 7578 §4.7: senders must not use it; Django decoded base64, this refuses it.
_IDENTITY_ENCODINGS = {"7bit", "8bit", "binary"}


class BodyStream(Protocol):
    def read(self, size: int, /) -> bytes: ...


class FileHandler(Protocol):
    """What is used of a Django ``FileUploadHandler``."""

    def new_file(
        self,
        field_name: str,
        file_name: str,
        content_type: str,
        content_length: int | None,
        charset: str | None = None,
        content_type_extra: dict[str, Any] | None = None,
    ) -> None: ...

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None: ...

    def file_complete(self, file_size: int) -> Any: ...


def sanitize_file_name(file_name: str) -> str | None:
    """The name Django's parser would give the file (its ``sanitize_file_name``).

    Kept identical so a name reads the same as before the parser changed:
    the last path component, HTML entities decoded, no unprintable
    characters; ``None`` (the part is skipped) for an empty name, ``.`` or ``..``.
    """
    file_name = html.unescape(file_name)
    file_name = file_name.rsplit("/")[-1].rsplit("\\")[-1]
    file_name = "".join(char for char in file_name if char.isprintable())
    return None if file_name in {"", ".", ".."} else file_name


class _Form:
    """What the parts add up to: fields, files handed to the handler, and the limits."""

    def __init__(self, handler: FileHandler, encoding: str):
        self.handler = handler
        self.encoding = encoding
        self.post = QueryDict(mutable=True)
        self.files: MultiValueDict[str, Any] = MultiValueDict()
        self.fields = 0
        self.file_count = 0
        self.field_bytes = 0
        # The part being read: a field's pieces, or the file's name and size.
        self.name = ""
        self.pieces: list[bytes] | None = None
        self.file_size: int | None = None

    def start(self, segment: MultipartSegment) -> None:
        encoding = (segment.header("Content-Transfer-Encoding") or "binary").strip().lower()
        if encoding not in _IDENTITY_ENCODINGS:
            raise MultiPartParserError(f"Content-Transfer-Encoding {encoding!r} is not supported.")
        # Name and file name as Django's parser read them (RFC 2231 ``filename*``
        # included, no other unquoting), so they are what they were before.
        _, params = parse_header_parameters(segment.header("Content-Disposition") or "")
        self.name = force_str(params.get("name", ""), self.encoding, errors="replace").strip()
        filename = params.get("filename")
        self.pieces = None
        self.file_size = None
        if not filename:  # no file name: a field, as for Django
            self.fields += 1
            limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
            if limit is not None and self.fields > limit:
                raise TooManyFieldsSent(
                    "The number of GET/POST parameters exceeded "
                    "settings.DATA_UPLOAD_MAX_NUMBER_FIELDS."
                )
            self.pieces = []
            self._count_field_bytes(len(self.name) + 2)  # as Django counts "&name="
            return
        self.file_count += 1
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        if limit is not None and self.file_count > limit:
            raise TooManyFilesSent(
                "The number of files exceeded settings.DATA_UPLOAD_MAX_NUMBER_FILES."
            )
        file_name = sanitize_file_name(filename)
        if file_name is None or not self.name:
            return  # skipped, as Django skips it: its bytes are read and dropped
        try:
            length: int | None = int(segment.header("Content-Length") or "")
        except ValueError:
            length = None
        self.handler.new_file(
            self.name, file_name, segment.content_type or "", length, segment.charset, {}
        )
        self.file_size = 0

    def data(self, piece: bytes) -> None:
        if self.file_size is not None:
            self.handler.receive_data_chunk(piece, self.file_size)
            self.file_size += len(piece)
        elif self.pieces is not None:
            self._count_field_bytes(len(piece))
            self.pieces.append(piece)

    def end(self) -> None:
        if self.file_size is not None:
            uploaded = self.handler.file_complete(self.file_size)
            if uploaded is not None:
                self.files.appendlist(self.name, uploaded)
        elif self.pieces is not None and self.name:
            value = force_str(b"".join(self.pieces), self.encoding, errors="replace")
            self.post.appendlist(self.name, value)
        self.pieces = None
        self.file_size = None

    def _count_field_bytes(self, n: int) -> None:
        self.field_bytes += n
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and self.field_bytes > limit:
            raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")


def parse_multipart(
    *,
    stream: BodyStream,
    boundary: bytes,
    content_length: int,
    encoding: str | None,
    handler: FileHandler,
) -> tuple[QueryDict, MultiValueDict[str, Any]]:
    """Read the body to its end: its fields, and its file parts passed to ``handler``.

    Each file part goes to ``handler`` piece by piece as it arrives
    (``new_file``, ``receive_data_chunk``, ``file_complete``); whatever
    ``file_complete`` returns is listed in FILES under the part's name.
    """
    form = _Form(handler, encoding or settings.DEFAULT_CHARSET)
    parser = PushMultipartParser(
        boundary,
        content_length=content_length,
        max_header_size=MAX_HEADER_SIZE,
        max_header_count=MAX_HEADER_COUNT,
    )
    try:
        for chunk in _pieces(stream):
            for event in parser.parse(chunk):  # b"": the end; raises if the body is cut short
                if event is None:
                    form.end()
                elif isinstance(event, MultipartSegment):
                    form.start(event)
                else:
                    form.data(event)
    except MultipartError as exc:
        raise MultiPartParserError(f"Malformed multipart body: {exc}") from exc
    return form.post, form.files


def _pieces(stream: BodyStream) -> Iterator[bytes]:
    """The body in reads sized to the client: READ_SIZE while it keeps up, else smaller.

    Ends with one ``b""``. The first read is small too: it holds the part
    headers and the type check's head, wanted as soon as they are there.
    """
    size = SLOW_READ_SIZE
    while True:
        started = monotonic()
        chunk = stream.read(size)
        yield chunk
        if not chunk:
            return
        fast = len(chunk) >= READ_SIZE * (monotonic() - started)  # >= READ_SIZE a second
        size = READ_SIZE if fast else SLOW_READ_SIZE
