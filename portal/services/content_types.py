"""A file's type: from its first bytes, its extension and (last) the client's word.

Used by every upload path before any byte is stored, so a refused type never
reaches storage: a simple upload checks its head as it arrives, a resumable
upload the head of its parts before they are assembled.
"""

from __future__ import annotations

import codecs
import csv
import io
import mimetypes
import re

import puremagic
from django.conf import settings

from common.exceptions import UnsupportedMediaTypeError, ValidationError
from common.services.json_input import json_parse
from portal.services.hashing import HEAD_SIZE

# puremagic scores short signatures (one or two bytes) below this; they match
# plenty of ordinary text and would make the content check refuse it.
MIN_MAGIC_CONFIDENCE = 0.3
OCTET_STREAM = "application/octet-stream"
# A JSON file's head is parsed to see that it is JSON; json.loads recurses,
# and a head of nothing but brackets (8 KiB: 4 096 levels) raised
# RecursionError. Deeper than this is not JSON Python can read: refused.
CONTENT_JSON_MAX_DEPTH = 512


def _normalise_type(value: str | None) -> str | None:
    if not value or not isinstance(value, str):
        return None
    value = value.split(";", 1)[0].strip().lower()
    major, slash, minor = value.partition("/")
    if not slash or not major or not minor or len(value) > 255:
        return None
    return value


def _detect_from_content(head: bytes, ext_type: str | None) -> str | None:
    if not head:
        return None
    try:
        matches = puremagic.magic_string(head)
    except puremagic.PureError:
        return None
    candidates = [m for m in matches if m.mime_type and m.confidence >= MIN_MAGIC_CONFIDENCE]
    if not candidates:
        return None
    # Container formats (zip → docx/xlsx/...) match several types: the
    # extension picks among what the content allows.
    if ext_type and any(m.mime_type == ext_type for m in candidates):
        return ext_type
    best = max(candidates, key=lambda m: m.confidence)
    return _normalise_type(best.mime_type)


def _type_allowed(content_type: str, allowed: list[str]) -> bool:
    for pattern in allowed:
        pattern = pattern.strip().lower()
        if pattern in ("*", "*/*", content_type):
            return True
        if pattern.endswith("/*") and content_type.startswith(pattern[:-1]):
            return True
    return False


def type_allowed(content_type: str, allowed: list[str]) -> bool:
    """Whether ``content_type`` matches one of ``allowed`` (``image/*``, ``*/*`` wildcards)."""
    return _type_allowed(content_type, allowed)


# Types whose files are text: recognised by being valid text of their kind,
# since text carries no signature.
_TEXT_APPLICATION_TYPES = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/xml",
        "application/javascript",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/sql",
    }
)
# C0 controls that do not occur in text files (tab, newlines, form feed and
# ESC, used by coloured logs, do).
_BINARY_CONTROLS = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")


def is_text_type(content_type: str) -> bool:
    major, _, minor = content_type.partition("/")
    return (
        major == "text"
        or content_type in _TEXT_APPLICATION_TYPES
        or minor.endswith(("+json", "+xml"))
    )


def _head_text(head: bytes, *, complete: bool) -> str | None:
    """The head as text, or None if it is not UTF-8 text (a cut last character is fine)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        text = decoder.decode(head, final=complete)
    except UnicodeDecodeError:
        return None
    return None if _BINARY_CONTROLS.search(text) else text


def _parse_json_content(text: str) -> None:
    # The bytes are stored as they are, never as jsonb: NaN in a file is the
    # file's business (Python writes it), so only the nesting is limited.
    json_parse(text, field="file", max_depth=CONTENT_JSON_MAX_DEPTH, finite_only=False)


def _is_valid_text_of(content_type: str, head: bytes, *, complete: bool) -> bool:
    """Whether the head is valid text of ``content_type``, as far as a head can show."""
    text = _head_text(head, complete=complete)
    if text is None:
        return False
    minor = content_type.partition("/")[2]
    if content_type == "application/x-ndjson":
        # A cut last line cannot be parsed; judge the complete ones.
        lines = text.splitlines() if complete else text.rpartition("\n")[0].splitlines()
        try:
            for line in lines:
                if line.strip():
                    _parse_json_content(line)
        except (ValueError, ValidationError):
            return False
        return True
    if content_type == "application/json" or minor.endswith("+json"):
        if not complete:
            return text.lstrip()[:1] in ("{", "[")
        try:
            _parse_json_content(text)
        except (ValueError, ValidationError):
            return False
        return True
    if minor == "xml" or minor.endswith("+xml"):
        return text.lstrip()[:1] == "<"
    if content_type == "text/csv" and complete:
        try:
            for _row in csv.reader(io.StringIO(text), strict=True):
                pass
        except csv.Error:
            return False
    return True


def _refuse(content_type: str, allowed: list[str], message: str) -> UnsupportedMediaTypeError:
    return UnsupportedMediaTypeError(
        message, details={"content_type": content_type, "allowed_types": allowed}
    )


def upload_file_content_type(
    *, head: bytes, filename: str, declared: str | None, allowed_types: list[str] | None = None
) -> str:
    """The file's type, from its first bytes, its extension and (last) the client.

    With ``FILE_UPLOAD_ALLOWED_TYPES`` set, the name and the declared type
    never suffice: the content must be recognised (by its signature) as an
    allowed type, or, for a text type, be valid text of that kind (UTF-8,
    CSV that parses, JSON that parses as far as the head allows). An
    extension naming a refused type is refused whatever the content, and
    content of one type under a name of another (PHP or plain text called
    ``a.png``) is refused. An empty file is empty text: accepted only as an
    allowed text type that may be empty (``text/plain``, ``text/csv``).
    ``head`` is the file's first ``HEAD_SIZE`` bytes, all of it if shorter.
    ``allowed_types`` (an upload request's list, already checked to narrow
    the portal's) replaces the setting, with the same rules.
    """
    ext_type = _normalise_type(mimetypes.guess_type(filename, strict=False)[0])
    if ext_type == OCTET_STREAM:
        ext_type = None  # ".bin" says nothing; let the client's declared type speak
    declared_type = _normalise_type(declared)
    if declared_type == OCTET_STREAM:
        declared_type = None
    detected = _detect_from_content(head, ext_type)
    content_type = detected or ext_type or declared_type or OCTET_STREAM

    allowed = [t for t in (getattr(settings, "FILE_UPLOAD_ALLOWED_TYPES", None) or []) if t]
    if allowed_types:
        allowed = list(allowed_types)
    if not allowed or _type_allowed("*/*", allowed):
        return content_type
    if ext_type is not None and not _type_allowed(ext_type, allowed):
        raise _refuse(ext_type, allowed, f"Files of type {ext_type} are not accepted.")
    if detected is not None:
        if not _type_allowed(detected, allowed):
            raise _refuse(detected, allowed, f"Files of type {detected} are not accepted.")
        return detected
    # No signature: only a text type can be recognised, by its content.
    claimed = ext_type or declared_type or "text/plain"
    if not _type_allowed(claimed, allowed):
        raise _refuse(claimed, allowed, f"Files of type {claimed} are not accepted.")
    if not is_text_type(claimed):
        raise _refuse(
            claimed, allowed, f"The content is not recognised as {claimed}; it is not accepted."
        )
    if not _is_valid_text_of(claimed, head, complete=len(head) < HEAD_SIZE):
        raise _refuse(claimed, allowed, f"The content is not valid {claimed}; it is not accepted.")
    return claimed
