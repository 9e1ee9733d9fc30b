"""The one reader and checker of client JSON: finite numbers, bounded nesting.

Python's json module reads ``NaN``, ``Infinity`` and ``-Infinity`` (and
``1e999`` as infinity), which are not JSON (RFC 8259) and which PostgreSQL's
jsonb refuses: such a number surfaced as a database error (500) after other
work was done. Nesting is read recursively (by ``json.loads``, and by
``json.dumps``, psycopg and pydantic after it): metadata 50 000 levels deep
raised ``RecursionError`` (500). Both are refused here as a 400 naming the
field and where in it the problem is.

Every JSON input goes through this module: the API's request bodies (the
NinjaAPI's parser), the multipart ``metadata`` part, the admin's JSON fields
(``StorableJSONDecoder``) and the uploaded-content check; the services that
store client JSON (``clean_metadata``) call ``json_check`` on values that
came in some other way (the forms, the CLI, Python callers).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from common.exceptions import ValidationError
from common.services.text import clean_json

# Metadata is a small, flat-ish record (16 KiB at most); 32 levels is far
# beyond what it needs and far below what the recursive readers survive.
MAX_JSON_DEPTH = 32

NON_FINITE = "must not contain NaN or Infinity (JSON has no such numbers)"

# Tokens that change the nesting or the position within it. A string is one
# token, so brackets inside it do not count.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\],]')

type _Path = list[str | int | None]


def _format(path: _Path) -> str:
    """``a.b[2].c``, the form ``common.services.text`` uses (``""`` = the top level)."""
    out = ""
    for part in path:
        if part is None:  # a container where a key belongs: not JSON, named as well as can be
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _too_deep_in_text(text: str, max_depth: int) -> _Path | None:
    """Where ``text`` first nests deeper than ``max_depth``, or None.

    Read without recursion, before any parser that recurses sees it. Only
    reached when the text has more brackets than ``max_depth`` at all.
    """
    # Each open container: [key or index within it, expecting a key next].
    stack: list[list[Any]] = []
    for match in _TOKENS.finditer(text):
        piece = match.group()
        if piece in ("{", "["):
            if len(stack) >= max_depth:
                return [frame[0] for frame in stack]
            stack.append([None, True] if piece == "{" else [0, False])
        elif piece in ("}", "]"):
            if stack:
                stack.pop()
        elif piece == ",":
            if stack:
                if isinstance(stack[-1][0], int):
                    stack[-1][0] += 1
                else:
                    stack[-1][1] = True
        elif stack and stack[-1][1]:  # a key
            try:
                stack[-1][0] = json.loads(piece)
            except ValueError:
                stack[-1][0] = piece
            stack[-1][1] = False
    return None


def _problem_in_value(value: Any, max_depth: int) -> tuple[_Path, bool] | None:
    """Where a parsed value nests too deep (True) or holds a non-finite
    number (False), or None.

    Iterative, so a value built deeper than the recursion limit is still checked.
    """
    pending: list[tuple[Any, _Path]] = [(value, [])]
    while pending:
        item, path = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return path, False
        if isinstance(item, dict | list | tuple):
            # ``path`` holds one key or index per container above this one.
            if len(path) >= max_depth:
                return path, True
            children = item.items() if isinstance(item, dict) else enumerate(item)
            # Reversed, so the first problem in document order is found first.
            pending.extend((child, [*path, key]) for key, child in reversed(list(children)))
    return None


def _too_deep(max_depth: int) -> str:
    return f"is nested deeper than {max_depth} levels"


def _refuse(field: str | None, path: _Path, problem: str) -> ValidationError:
    """The error naming the field; ``field=None``: the top-level key is the field."""
    if field is None:
        if path and isinstance(path[0], str):
            field, path = path[0], path[1:]
        else:
            field = "body"
    where = _format(path)
    return ValidationError(
        f"{field} {problem}" + (f" (at {where})." if where else "."),
        details={"field": field, "path": where},
    )


def json_parse(
    raw: str | bytes,
    *,
    field: str | None,
    max_depth: int = MAX_JSON_DEPTH,
    finite_only: bool = True,
) -> Any:
    """Parse client JSON; refuse (400) what nests deeper than ``max_depth``
    levels of objects and arrays, and, unless ``finite_only`` is False,
    ``NaN``/``Infinity``.

    ``field`` names the input in the error. None means the document is a
    request body whose top-level keys are the fields: each field's value may
    nest ``max_depth`` levels (the body is the level above), and an error
    names the field it is in. Syntax errors are left as json's
    ``ValueError`` for the caller to answer as it always has.
    """
    text = raw.decode(json.detect_encoding(raw), "surrogatepass") if isinstance(raw, bytes) else raw
    limit = max_depth + 1 if field is None else max_depth
    if text.count("[") + text.count("{") > limit:
        too_deep_at = _too_deep_in_text(text, limit)
        if too_deep_at is not None:
            raise _refuse(field, too_deep_at, _too_deep(max_depth))
    value = json.loads(text)
    if finite_only:
        found = _problem_in_value(value, limit)
        if found is not None:
            path, deep = found
            raise _refuse(field, path, _too_deep(max_depth) if deep else NON_FINITE)
    return value


def json_check(value: Any, *, field: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``value`` unchanged, or a 400 naming ``field`` if it nests deeper than
    ``max_depth`` levels or holds a non-finite number."""
    found = _problem_in_value(value, max_depth)
    if found is not None:
        path, deep = found
        raise _refuse(field, path, _too_deep(max_depth) if deep else NON_FINITE)
    return value


class StorableJSONDecoder(json.JSONDecoder):
    """A ``json.JSONDecoder`` that refuses what PostgreSQL's jsonb cannot store.

    For Django's ``forms.JSONField(decoder=...)`` (the admin's JSON fields),
    which saves the model directly, past the services: these rules plus the
    text check (NUL, unpaired surrogates). The form field answers the
    ``JSONDecodeError`` with its ``invalid`` error message.
    """

    def decode(self, s: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return clean_json(json_parse(s, field="value"), field="value")
        except ValidationError as exc:
            raise json.JSONDecodeError(exc.message, s, 0) from exc
