"""A zip of stored files written as it is sent: no temporary copy, flat memory.

Written with the standard library's ``zipfile`` onto a sink that cannot seek,
which makes ``zipfile`` put each entry's CRC and sizes in a data descriptor
after its bytes instead of going back to patch its header. Entries are
STORED (files people exchange are mostly compressed already, and deflating
gigabytes would cost the web process CPU for little), and ZIP64 records are
written where a size or offset passes 4 GiB, because each entry's size is
known from its record beforehand. What stays in memory is one piece of one
file plus the central directory (about a hundred bytes per entry), whatever
the batch weighs.

Why ``zipfile`` and not a library such as zipstream-ng: the standard
library's writer already streams to an unseekable sink, is maintained with
Python, and the glue is the thirty lines below; a dependency would add
release tracking for no feature Doorito uses.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from django.utils import timezone

from portal.models import UploadFile
from portal.services.downloads import file_chunks


class _Sink:
    """A write-only, unseekable file object whose writes are collected for the next yield.

    ``tell()`` is missing on purpose: that is how ``zipfile`` learns it cannot
    seek back (it then counts the offsets itself).
    """

    def __init__(self) -> None:
        self._pieces: list[bytes] = []

    def write(self, data: bytes) -> int:
        if data:
            self._pieces.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._pieces)
        self._pieces.clear()
        return data


@dataclass
class ZipPlan:
    """The files a zip will hold, each under a unique name inside it."""

    entries: list[tuple[str, UploadFile]] = field(default_factory=list)

    @property
    def files(self) -> list[UploadFile]:
        return [file for _, file in self.entries]


def zip_plan(files: Iterable[UploadFile]) -> ZipPlan:
    """Name each file inside the zip: its filename, with ``name (2).ext`` for repeats.

    Filenames are cleaned at upload (no path separators or controls), so an
    entry can never land outside the folder it is unpacked into.
    """
    plan = ZipPlan()
    used: set[str] = set()
    for file in files:
        base = (file.filename or "file").replace("/", "_").replace("\\", "_").lstrip(".") or "file"
        stem, dot, ext = base.rpartition(".")
        if not stem:
            stem, dot, ext = base, "", ""
        name, n = base, 1
        while name.lower() in used:
            n += 1
            name = f"{stem} ({n}){dot}{ext}"
        used.add(name.lower())
        plan.entries.append((name, file))
    return plan


def zip_stream(
    plan: ZipPlan,
    *,
    read: Callable[[UploadFile], Iterable[bytes]] = file_chunks,
) -> Iterator[bytes]:
    """The zip of ``plan``'s files as pieces of bytes, made while they are sent."""
    sink = _Sink()
    # The writer is closed only on a full run: closing it after the client
    # went away would write the central directory into a dead response.
    archive = zipfile.ZipFile(
        sink,  # type: ignore[call-overload]  # a write-only sink: no read/seek/tell on purpose
        mode="w",
        compression=zipfile.ZIP_STORED,
        allowZip64=True,
    )
    for name, file in plan.entries:
        stamp = timezone.localtime(file.stored_at or file.created_at or timezone.now())
        info = zipfile.ZipInfo(name, date_time=max(stamp.timetuple()[:6], (1980, 1, 1, 0, 0, 0)))
        info.compress_type = zipfile.ZIP_STORED
        info.file_size = file.size  # known, so ZIP64 is chosen up front where needed
        info.external_attr = 0o644 << 16
        with archive.open(info, mode="w") as entry:
            for chunk in read(file):
                entry.write(chunk)
                yield sink.take()
        yield sink.take()
    archive.close()
    yield sink.take()
