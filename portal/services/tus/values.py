"""The typed values a tus request carries into the upload services.

The HTTP layer (``api.tus.headers``) parses headers into these; services take
them as arguments, so the domain never imports the layer above it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from common.exceptions import ValidationError
from portal.services.hashing import Hasher

CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1, "md5": hashlib.md5, "sha256": hashlib.sha256}


class TusHeaderError(ValidationError):
    code = "invalid_tus_header"


@dataclass(frozen=True)
class UploadMetadata:
    """``Upload-Metadata`` decoded: the raw header (echoed on HEAD) and its pairs.

    Values are text where they decode as UTF-8; a key without a value maps to
    ``""``. Binary values stay base64 (``binary`` lists their keys).
    """

    raw: str = ""
    values: dict[str, str] = field(default_factory=dict)
    binary: tuple[str, ...] = ()

    def text(self, key: str) -> str | None:
        """The UTF-8 value of ``key``; a 400 if it was sent but is not text."""
        if key in self.binary:
            raise TusHeaderError(
                f"Upload-Metadata {key!r} must be UTF-8 text.",
                details={"header": "Upload-Metadata", "key": key},
            )
        return self.values.get(key)


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes

    def new_hasher(self) -> Hasher:
        return CHECKSUM_ALGORITHMS[self.algorithm]()

    def header_value(self) -> str:
        return f"{self.algorithm} {base64.b64encode(self.digest).decode('ascii')}"
