"""Reading an upload's bytes once, counting and hashing them on the way.

Every path that moves bytes into storage (a simple upload, a tus ``PATCH``,
the assembly of a finished tus upload) reads through ``HashingReader``, so
size limits, hashes and the file-like behaviour storage backends expect are
written once. Reads happen in ``STREAM_CHUNK_SIZE`` pieces: memory never
depends on the size of a body or of a file.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Protocol, cast

Buffer = bytes | bytearray | memoryview

# Large pieces keep the Python work per byte small (one loop turn, one
# hash call and one storage write per MiB); hashlib releases the GIL for
# buffers this size, so hashing runs beside other threads' Python code.
STREAM_CHUNK_SIZE = 1024 * 1024
# Enough leading bytes for content sniffing.
HEAD_SIZE = 8192


class BinaryStream(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Hasher(Protocol):
    """What ``hashlib`` objects offer (and all that is used of them)."""

    def update(self, data: Buffer, /) -> None: ...

    def digest(self) -> bytes: ...

    def hexdigest(self) -> str: ...


class TooLargeError(Exception):
    """More than the reader's ``max_size`` arrived (raised before it is handed on)."""


def read_head(stream: BinaryStream, size: int = HEAD_SIZE) -> bytes:
    """Up to ``size`` leading bytes, tolerating the short reads of sockets."""
    return _fill(stream.read, size)


def _fill(read_some: Callable[[int], bytes | str], size: int) -> bytes:
    """``size`` bytes (fewer only at the end), as callers of ``read(n)`` expect.

    boto3 takes a short read for the end of the stream.
    """
    pieces: list[bytes] = []
    got = 0
    while got < size:
        data = read_some(size - got)
        if not data:
            break
        if isinstance(data, str):
            data = data.encode()
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

    def __init__(self, hashers: Sequence[Hasher]):
        self._queue: queue.Queue[tuple[Buffer, Callable[[], None] | None] | None] = queue.Queue(
            maxsize=4
        )
        self._thread = threading.Thread(target=self._run, args=(hashers,), daemon=True)
        self._thread.start()

    def _run(self, hashers: Sequence[Hasher]) -> None:
        while (item := self._queue.get()) is not None:
            data, hashed = item
            for hasher in hashers:
                hasher.update(data)
            if hashed is not None:
                hashed()

    def update(self, data: Buffer, hashed: Callable[[], None] | None = None) -> None:
        """Hash ``data`` on the thread; ``hashed()`` is called there once it is."""
        self._queue.put((data, hashed))

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join()


class HashingReader:
    """A read-once, non-seekable file object over ``stream`` for ``Storage.save``.

    - ``head``: bytes already read from ``stream`` (for the type check),
      handed on first.
    - ``limit``: read at most this many bytes, then end (a tus ``PATCH``
      body of ``Content-Length`` bytes).
    - ``max_size``: more than this is refused with ``TooLargeError``, having
      read at most one byte past it (a simple upload's size limit).
    - ``tolerate_disconnect``: a client that drops the connection just ends
      the stream early (``interrupted``), as tus wants what did arrive kept;
      otherwise the error propagates and the upload fails.
    - ``hash_on_thread``: feed the hashers from a second thread.
    - ``heartbeat``: called every ``heartbeat_seconds`` while reading.
    - ``content_type``: what S3 records as the object's Content-Type.

    ``read(n)`` fills whole buffers (S3 gets full parts; a short read means
    the end); ``read()`` returns the next piece, never everything at once.
    """

    closed = False

    def __init__(
        self,
        stream: BinaryStream,
        *,
        hashers: Sequence[Hasher] = (),
        head: bytes = b"",
        limit: int | None = None,
        max_size: int | None = None,
        tolerate_disconnect: bool = False,
        hash_on_thread: bool = False,
        heartbeat: Callable[[], None] | None = None,
        heartbeat_seconds: float = 60.0,
        content_type: str | None = None,
    ):
        self._stream = stream
        self._pending = head
        self._remaining = limit
        self._max_size = max_size
        self._tolerate_disconnect = tolerate_disconnect
        self._hashers = tuple(hashers)
        self._thread = _HashingThread(self._hashers) if hash_on_thread and hashers else None
        self._heartbeat = heartbeat
        self._heartbeat_seconds = heartbeat_seconds
        self._beat_at = time.monotonic() + heartbeat_seconds
        self.content_type = content_type
        self.size = 0
        self.interrupted = False

    def read(self, size: int | None = -1, /) -> bytes:
        want = STREAM_CHUNK_SIZE if size is None or size < 0 else size
        return _fill(self._read_some, want) if want else b""

    def _read_some(self, size: int) -> bytes:
        if self._pending:
            data, self._pending = self._pending[:size], self._pending[size:]
        else:
            data = self._read_stream(size)
        if not data:
            return b""
        self._account(data)
        return data

    def _read_stream(self, size: int) -> bytes:
        size = min(size, STREAM_CHUNK_SIZE)
        if self._remaining is not None:
            if self._remaining <= 0:
                return b""
            size = min(size, self._remaining)
        if self._max_size is not None:
            # Never ask for more than one byte past the limit.
            size = min(size, self._max_size + 1 - self.size)
        try:
            data = self._stream.read(size)
        except OSError:
            if not self._tolerate_disconnect:
                raise
            data = b""
        if isinstance(data, str):
            data = data.encode()
        if not data:
            if self._remaining is not None and self._remaining > 0:
                self.interrupted = True
            self._remaining = 0
            return b""
        if self._remaining is not None:
            self._remaining -= len(data)
        return data

    def pieces(self, buffers: int = 8, piece_size: int = 256 * 1024) -> Iterator[memoryview]:
        """Every byte left, read into a few reused buffers and lent out a piece at a time.

        For a caller that writes each piece and is done with it before it asks
        for the next (a file write): no ``bytes`` object per piece, no copy
        past the one out of the socket when the stream can ``readinto``
        (``web.raw_body.SocketBody``). With a hash thread each buffer is
        lent to it too and comes back once hashed, so at most ``buffers``
        pieces are in memory.

        Why 256 KiB pieces and not the 1 MiB of ``read``: the hash thread
        starts on the first piece as soon as it is in, and a body's last
        piece leaves less to hash after the last byte. tuspy's 8 MiB PATCHes
        went from ~385 to ~490 MB/s in interleaved runs (128 KiB: the same).
        """
        if self._pending:
            # Bytes read before (the type check's head) come first, as they are.
            data, self._pending = self._pending, b""
            self._account(data)
            yield memoryview(data)
        readinto = getattr(self._stream, "readinto", None) or _readinto_by_read(self._stream)
        size = piece_size
        if self._remaining is not None:
            size = max(1, min(size, self._remaining))
        free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        for _ in range(buffers if self._thread is not None else 1):
            free.put(bytearray(size))
        while True:
            buffer = free.get()
            got = self._fill_into(readinto, buffer)
            if not got:
                return
            view = memoryview(buffer)[:got]
            self._account(view, hashed=lambda b=buffer: free.put(b))  # type: ignore[misc]
            yield view

    def _fill_into(self, readinto: Callable[[memoryview], int], buffer: bytearray) -> int:
        """Fill ``buffer`` (or up to the limit, or the end); how many bytes went in."""
        want = len(buffer)
        if self._remaining is not None:
            want = min(want, self._remaining)
        if self._max_size is not None:
            want = min(want, self._max_size + 1 - self.size)
        view = memoryview(buffer)
        got = 0
        while got < want:
            try:
                n = readinto(view[got:want])
            except OSError:
                if not self._tolerate_disconnect:
                    raise
                n = 0
            if not n:
                if self._remaining is not None and self._remaining > got:
                    self.interrupted = True
                self._remaining = 0
                return got
            got += n
        if self._remaining is not None:
            self._remaining -= got
        return got

    def _account(self, data: Buffer, hashed: Callable[[], None] | None = None) -> None:
        """Count and hash one piece (on the thread, if any; ``hashed()`` once done)."""
        self.size += len(data)
        if self._max_size is not None and self.size > self._max_size:
            raise TooLargeError
        if self._thread is not None:
            self._thread.update(data, hashed)
        else:
            for hasher in self._hashers:
                hasher.update(data)
            if hashed is not None:
                hashed()
        if self._heartbeat is not None and time.monotonic() >= self._beat_at:
            self._beat_at = time.monotonic() + self._heartbeat_seconds
            self._heartbeat()

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        while data := self.read(chunk_size or STREAM_CHUNK_SIZE):
            yield data

    def drain(self) -> int:
        """Read (and hash) everything left; the total size."""
        for _ in self.chunks():
            pass
        return self.size

    def finish(self) -> None:
        """Wait until every byte read so far is hashed (call once, before the digests)."""
        if self._thread is not None:
            self._thread.finish()
            self._thread = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        # The stream belongs to the caller, who closes it.
        self.closed = True


def _readinto_by_read(stream: BinaryStream) -> Callable[[memoryview], int]:
    """``readinto`` for a stream that only reads (one more copy; not the production path)."""

    def readinto(view: memoryview) -> int:
        data = stream.read(len(view))
        if isinstance(data, str):
            data = data.encode()
        view[: len(data)] = data
        return len(data)

    return readinto


def as_file(reader: HashingReader) -> IO[bytes]:
    """``reader`` as the file ``Storage.save`` takes: it reads it like one, forward only."""
    return cast("IO[bytes]", reader)
