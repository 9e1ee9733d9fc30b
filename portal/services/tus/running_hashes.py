"""The sha256 of each upload's bytes so far, in the process that received them.

Only a shortcut: a hash state cannot be shared between processes, so it is
used when this process also received every earlier PATCH of the upload (its
offset matches the session's); otherwise finalisation reads the parts back
to hash them, as any process can. It hashes while the body arrives, when
the process would otherwise wait for the network, and spares the last PATCH
a full read of the file.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from uuid import UUID

from portal.services.hashing import Hasher


class RunningHashes:
    """Bounded: the least recently used entry is dropped first."""

    def __init__(self, capacity: int = 1024):
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[UUID, tuple[int, Hasher]] = OrderedDict()

    def take(self, session_id: UUID, offset: int) -> Hasher | None:
        """The hash of the first ``offset`` bytes, removed from the cache, or ``None``."""
        with self._lock:
            entry = self._entries.pop(session_id, None)
        if offset == 0:
            return hashlib.sha256()
        if entry is not None and entry[0] == offset:
            return entry[1]
        return None

    def keep(self, session_id: UUID, offset: int, hasher: Hasher) -> None:
        with self._lock:
            self._entries[session_id] = (offset, hasher)
            self._entries.move_to_end(session_id)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


running_hashes = RunningHashes()
