"""A sha256 whose state can be saved with the upload and resumed by any process.

Why: a tus upload's PATCHes land on whichever gunicorn worker accepts them
(clients such as tuspy open a new connection for each). ``hashlib`` objects
cannot be saved, so a worker that had not received every earlier PATCH could
not continue the hash, and the completing request re-read the whole file
(17 % of a 1 GiB upload's server time). Here the hash runs on OpenSSL's
``SHA256_*`` functions through ``ctypes`` (the same OpenSSL ``hashlib``
uses, at the same speed, and ``ctypes`` lets go of the GIL while it hashes),
and its context, 112 bytes, is stored in the upload session's row in the
same ``UPDATE`` that moves the offset, so state and offset always agree.

Where the functions or the layout are not what this expects (checked once
by hashing with a save and a restore in the middle and comparing with
``hashlib``), ``available()`` is false and uploads hash as before: at the
end, reading the parts back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
from collections.abc import Iterator

# SHA256_CTX: h[8], Nl, Nh, data[16], num, md_len, all 32-bit.
CONTEXT_SIZE = 28 * 4
STATE_VERSION = b"\x01"


@functools.cache
def _libcrypto() -> ctypes.CDLL | None:
    # The library hashlib itself uses on Debian first; asking ldconfig (a
    # process) only if it is not there.
    def names() -> Iterator[str | None]:
        yield "libcrypto.so.3"
        yield ctypes.util.find_library("crypto")

    for name in filter(None, names()):
        try:
            lib = ctypes.CDLL(name)
            lib.SHA256_Init.argtypes = [ctypes.c_void_p]
            lib.SHA256_Update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
            lib.SHA256_Final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        except (OSError, AttributeError):
            continue
        return lib
    return None


class ResumableSha256:
    """``hashlib.sha256()``'s interface, plus ``state()`` and ``from_state()``."""

    def __init__(self) -> None:
        lib = _libcrypto()
        if lib is None:
            raise RuntimeError("OpenSSL's SHA256 functions are not available")
        self._lib = lib
        self._ctx = ctypes.create_string_buffer(CONTEXT_SIZE)
        lib.SHA256_Init(self._ctx)

    @classmethod
    def from_state(cls, state: bytes) -> ResumableSha256:
        if len(state) != CONTEXT_SIZE + 1 or state[:1] != STATE_VERSION:
            raise ValueError("not a saved sha256 state")
        hasher = cls()
        ctypes.memmove(hasher._ctx, state[1:], CONTEXT_SIZE)
        return hasher

    def state(self) -> bytes:
        return STATE_VERSION + self._ctx.raw

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        size = memoryview(data).nbytes
        if isinstance(data, bytes):
            self._lib.SHA256_Update(self._ctx, data, size)
            return
        try:
            # A writable buffer (the reader's own) is hashed where it is; a
            # copy of every byte cost as much as a tenth of a PATCH.
            view = (ctypes.c_char * size).from_buffer(data)
        except TypeError:
            self._lib.SHA256_Update(self._ctx, bytes(data), size)
            return
        self._lib.SHA256_Update(self._ctx, view, size)

    def digest(self) -> bytes:
        copy = ctypes.create_string_buffer(self._ctx.raw, CONTEXT_SIZE)
        out = ctypes.create_string_buffer(32)
        self._lib.SHA256_Final(out, copy)
        return out.raw

    def hexdigest(self) -> str:
        return self.digest().hex()


@functools.cache
def available() -> bool:
    """Whether saving and resuming gives exactly ``hashlib``'s digest here."""
    if _libcrypto() is None:
        return False
    data = bytes(range(256)) * 41  # not a multiple of the 64-byte block
    try:
        first = ResumableSha256()
        first.update(data[:1001])
        resumed = ResumableSha256.from_state(first.state())
        resumed.update(data[1001:])
        return resumed.hexdigest() == hashlib.sha256(data).hexdigest()
    except (OSError, ValueError, RuntimeError):
        return False


def resume(state: bytes | memoryview | None, *, offset: int) -> ResumableSha256 | None:
    """The hash of an upload's first ``offset`` bytes, or ``None`` if it cannot be had.

    ``None`` means hashing at the end, from the stored bytes.
    """
    if not available():
        return None
    if offset == 0:
        return ResumableSha256()
    if not state:
        return None
    try:
        return ResumableSha256.from_state(bytes(state))
    except ValueError:
        return None
