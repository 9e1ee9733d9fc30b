"""A request body read straight from the client's socket into the caller's buffer.

gunicorn's body reader hands out ``bytes`` it put together in a ``BytesIO``:
every byte is received into a new object, written into the buffer, copied
out with ``getvalue()`` and sliced (and the caller may join the pieces
again). For a tus ``PATCH`` of 8 MiB that is most of the time the server
spends on the bytes. ``socket.recv_into`` puts them where the caller wants
them with the one copy out of the kernel.

Only a gunicorn request whose body has a ``Content-Length`` and of which
nothing has been read yet qualifies; anything else (Django's test client,
another server, a chunked body) gets ``None`` and the caller reads the
request as a stream. gunicorn's own count of what is left of the body is
kept in step, so on a kept-alive connection it finds the next request where
it begins.
"""

from __future__ import annotations

import io
from typing import Any

from django.http import HttpRequest
from gunicorn.http.body import Body, LengthReader


class SocketBody:
    """What is left of one request body: ``readinto`` fills a buffer from the socket."""

    def __init__(self, body: Any, reader: Any, unreader: Any, sock: Any):
        self._body = body
        self._reader = reader
        # What gunicorn had already received past the head (the worker reads
        # a head and up to 64 KiB of body before a thread takes the request)
        # stays in its buffer until it is read: a request refused before its
        # body is read (a 409, a 503) leaves gunicorn to skip the whole body,
        # as it would without this reader.
        self._unreader = unreader
        self._sock = sock

    def readinto(self, buffer: memoryview | bytearray, /) -> int:
        """Up to ``len(buffer)`` bytes into ``buffer``; 0 at the end of the body.

        A client that went away raises ``OSError`` (or, closing cleanly,
        ends the body early with 0), as a read from the socket would.
        """
        want = min(len(buffer), self._reader.length)
        if want <= 0:
            return 0
        buffered = self._unreader.buf.seek(0, io.SEEK_END)
        if buffered:
            data = self._unreader.read(min(want, buffered))
            got = len(data)
            buffer[:got] = data
        else:
            try:
                got = self._sock.recv_into(buffer, want)
            except OSError:
                self._body.failed = True  # where the next request starts is unknown
                raise
            if not got:
                self._body.failed = True
                return 0
        self._reader.length -= got
        return got

    def read(self, size: int = -1, /) -> bytes:
        """For callers that want ``bytes`` (a short body, the type check's head)."""
        want = self._reader.length if size is None or size < 0 else size
        buffer = bytearray(min(want, self._reader.length))
        got = self.readinto(buffer) if buffer else 0
        return bytes(buffer[:got])


def socket_body(request: HttpRequest) -> SocketBody | None:
    """The body of ``request`` as a ``SocketBody``, or ``None`` if it cannot be one."""
    if getattr(request, "_read_started", True):
        return None
    stream = request.META.get("wsgi.input")  # META is the WSGI environ
    if stream is None or type(stream) is not Body or stream.buf.tell():
        return None
    reader = stream.reader
    if type(reader) is not LengthReader:
        return None
    unreader = reader.unreader
    sock = getattr(unreader, "sock", None)
    if sock is None or not isinstance(getattr(unreader, "buf", None), io.BytesIO):
        return None
    request._read_started = True  # type: ignore[attr-defined]
    return SocketBody(stream, reader, unreader, sock)
