"""Test streams: objects with ``.read(n)`` like a request body, that count reads."""

from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tiny_png() -> bytes:
    """A valid 1x1 PNG, built here rather than stored as a binary fixture."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00\xff\x00\x00")
    return PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# The start of a Windows executable ("MZ" DOS header + PE offset).
EXE_HEAD = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48


class CountingStream:
    """``size`` bytes (``head`` then a filler), generated on demand."""

    def __init__(self, size: int, *, head: bytes = b"", fill: bytes = b"x"):
        self.size = size
        self.head = head
        self.fill = fill
        self.bytes_read = 0
        self.calls = 0

    def read(self, n: int = -1) -> bytes:
        self.calls += 1
        remaining = self.size - self.bytes_read
        if n is None or n < 0:
            n = remaining
        n = min(n, remaining)
        if n <= 0:
            return b""
        start = self.bytes_read
        out = bytearray()
        if start < len(self.head):
            out += self.head[start : start + n]
        missing = n - len(out)
        if missing:
            out += (self.fill * (missing // len(self.fill) + 1))[:missing]
        self.bytes_read += n
        return bytes(out)


class BytesStream(CountingStream):
    def __init__(self, data: bytes):
        super().__init__(len(data), head=data)
