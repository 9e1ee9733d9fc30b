"""Parsing and formatting of tus 1.0 request headers.

Everything a client sends is checked here and turned into typed values or a
``TusHeaderError`` (a 400 with a message naming the header), so the views and
services never see a malformed value. The typed values themselves
(``UploadMetadata``, ``Checksum``) belong to the upload domain
(``portal.services.tus.values``).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import urlsplit
from uuid import UUID

from common.services.text import clean_text
from portal.services.tus.values import (
    CHECKSUM_ALGORITHMS,
    Checksum,
    TusHeaderError,
    UploadMetadata,
)

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "expiration",
    "checksum",
    "termination",
    "concatenation",
)
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"

_METADATA_KEY = re.compile(r"^[^\s,]+$")
_DIGITS = re.compile(r"^[0-9]{1,19}$")


def parse_non_negative_int(value: str | None, *, header: str) -> int | None:
    """``None`` when absent; a non-negative integer, or a 400 naming the header."""
    if value is None:
        return None
    value = value.strip()
    if not _DIGITS.match(value):
        raise TusHeaderError(
            f"{header} must be a non-negative integer.", details={"header": header}
        )
    return int(value)


def parse_metadata(value: str | None) -> UploadMetadata:
    if value is None or not value.strip():
        return UploadMetadata()
    values: dict[str, str] = {}
    binary: list[str] = []
    for pair in value.split(","):
        pieces = pair.strip().split(" ")
        if len(pieces) > 2 or not _METADATA_KEY.match(pieces[0]):
            raise TusHeaderError(
                "Upload-Metadata must be comma-separated 'key base64value' pairs.",
                details={"header": "Upload-Metadata"},
            )
        key = pieces[0]
        if key in values:
            raise TusHeaderError(
                f"Upload-Metadata repeats the key {key!r}.",
                details={"header": "Upload-Metadata", "key": key},
            )
        encoded = pieces[1] if len(pieces) == 2 else ""
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise TusHeaderError(
                f"Upload-Metadata value of {key!r} is not valid base64.",
                details={"header": "Upload-Metadata", "key": key},
            ) from None
        try:
            text = decoded.decode("utf-8")
        except UnicodeDecodeError:
            values[key] = encoded
            binary.append(key)
            continue
        # The values are stored (session metadata, file fields): NUL cannot be.
        values[key] = clean_text(
            text,
            field=f"Upload-Metadata {key!r}",
            details={"header": "Upload-Metadata", "key": key},
        )
    return UploadMetadata(raw=value.strip(), values=values, binary=tuple(binary))


def parse_checksum(value: str | None) -> Checksum | None:
    """``Upload-Checksum: <algorithm> <base64 digest>``; unknown algorithm → 400."""
    if value is None:
        return None
    pieces = value.strip().split(" ")
    if len(pieces) != 2:
        raise TusHeaderError(
            "Upload-Checksum must be '<algorithm> <base64 digest>'.",
            details={"header": "Upload-Checksum"},
        )
    algorithm = pieces[0].lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise TusHeaderError(
            f"Checksum algorithm {pieces[0]!r} is not supported.",
            details={"header": "Upload-Checksum", "supported": sorted(CHECKSUM_ALGORITHMS)},
        )
    try:
        digest = base64.b64decode(pieces[1], validate=True)
    except (binascii.Error, ValueError):
        raise TusHeaderError(
            "Upload-Checksum digest is not valid base64.", details={"header": "Upload-Checksum"}
        ) from None
    if len(digest) != CHECKSUM_ALGORITHMS[algorithm]().digest_size:
        raise TusHeaderError(
            f"Upload-Checksum digest has the wrong length for {algorithm}.",
            details={"header": "Upload-Checksum"},
        )
    return Checksum(algorithm=algorithm, digest=digest)


@dataclass(frozen=True)
class Concat:
    """``Upload-Concat``: ``partial``, or ``final`` with the partial upload ids in order."""

    kind: str
    partial_ids: tuple[UUID, ...] = ()


def upload_id_from_url(url: str, *, prefix: str) -> UUID | None:
    """The upload id in an absolute or relative upload URL under ``prefix``."""
    path = urlsplit(url).path
    if not path.startswith(prefix):
        return None
    rest = path[len(prefix) :].strip("/")
    if not rest or "/" in rest:
        return None
    try:
        return UUID(rest)
    except ValueError:
        return None


def parse_concat(value: str | None, *, prefix: str) -> Concat | None:
    if value is None:
        return None
    value = value.strip()
    if value == "partial":
        return Concat(kind="partial")
    if value.startswith("final;"):
        urls = value[len("final;") :].split()
        ids = []
        for url in urls:
            upload_id = upload_id_from_url(url, prefix=prefix)
            if upload_id is None:
                raise TusHeaderError(
                    f"Upload-Concat names {url!r}, which is not an upload of this server.",
                    details={"header": "Upload-Concat"},
                )
            ids.append(upload_id)
        if not ids:
            raise TusHeaderError(
                "Upload-Concat final needs at least one partial upload.",
                details={"header": "Upload-Concat"},
            )
        return Concat(kind="final", partial_ids=tuple(ids))
    raise TusHeaderError(
        "Upload-Concat must be 'partial' or 'final;<url> <url> ...'.",
        details={"header": "Upload-Concat"},
    )
