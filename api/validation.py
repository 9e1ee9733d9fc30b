"""Input guards shared by the API schemas.

PostgreSQL refuses NUL characters in text and in jsonb; such input must be a
400 here, not a database error (500) later.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


SafeStr = Annotated[str, AfterValidator(_no_nul)]


def _json_no_nul(value: Any) -> Any:
    if value is not None and "\\u0000" in json.dumps(value):
        raise ValueError("must not contain NUL characters")
    return value


SafeJsonObject = Annotated[dict[str, Any], AfterValidator(_json_no_nul)]
