"""The one check every piece of client text passes before it is stored.

PostgreSQL stores neither NUL (``\\x00``) in text or jsonb nor an unpaired
UTF-16 surrogate (``"\\ud800"`` is valid JSON and a valid Python ``str``, but
not UTF-8, and jsonb refuses the escape): either would surface as a database
error (a 500) after other work was done. The API schemas, the tus header
parser, the services (and through them the forms, the admin and the CLI) all
call this module, so the rule and its message are the same everywhere.
"""

from __future__ import annotations

import re
from typing import Any

from common.exceptions import ValidationError

# json.loads joins a valid surrogate pair into one code point, so any
# surrogate left in a str is unpaired.
_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")
PROBLEM = "must not contain NUL characters or unpaired surrogates"


def text_is_storable(value: str) -> bool:
    """Whether PostgreSQL can store ``value`` as text."""
    return _FORBIDDEN.search(value) is None


def clean_text(value: str, *, field: str, details: dict[str, Any] | None = None) -> str:
    """``value`` unchanged, or a 400 ``ValidationError`` naming ``field``."""
    if not text_is_storable(value):
        raise ValidationError(f"{field} {PROBLEM}.", details={"field": field, **(details or {})})
    return value


def json_problem_path(value: Any, path: str = "") -> str | None:
    """Where in a JSON document a key or string cannot be stored, or None.

    The path is dotted for keys and ``[i]`` for list items (``""`` = the root),
    with the offending characters written as ``\\uXXXX`` so it can be shown.
    """
    if isinstance(value, str):
        return None if text_is_storable(value) else _printable(path)
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and not text_is_storable(key):
                return _printable(here)
            found = json_problem_path(item, here)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = json_problem_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _printable(path: str) -> str:
    return _FORBIDDEN.sub(lambda m: f"\\u{ord(m.group()):04x}", path)


def clean_json(value: Any, *, field: str) -> Any:
    """``value`` unchanged, or a 400 naming ``field`` and the offending key path."""
    path = json_problem_path(value)
    if path is not None:
        raise ValidationError(
            f"{field} {PROBLEM}" + (f" (at {path})." if path else "."),
            details={"field": field, "path": path},
        )
    return value


def check_text(value: Any) -> Any:
    """The pydantic/Django-validator form: raises ``ValueError`` (pydantic names the field)."""
    if isinstance(value, str) and not text_is_storable(value):
        raise ValueError(PROBLEM)
    if isinstance(value, dict | list):
        path = json_problem_path(value)
        if path is not None:
            raise ValueError(f"{PROBLEM} (at {path or 'the top level'})")
    return value
