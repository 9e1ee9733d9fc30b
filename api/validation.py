"""Input guards shared by the API schemas.

PostgreSQL refuses NUL characters in text and in jsonb; such input must be a
400 here, not a database error (500) later.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
)

# In the schema too, so clients (and schemathesis) know NUL is not allowed.
SafeStr = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]


def _json_no_nul(value: Any) -> Any:
    if value is not None and "\\u0000" in json.dumps(value):
        raise ValueError("must not contain NUL characters")
    return value


SafeJsonObject = Annotated[dict[str, Any], AfterValidator(_json_no_nul)]


def _iso_datetime_only(value: Any) -> Any:
    # pydantic would read "0.5" or "1700000000" as a Unix timestamp; the API
    # documents ISO 8601 date-times and accepts nothing else.
    if isinstance(value, str) and not ISO_DATE_PREFIX.match(value):
        raise ValueError("must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")
    return value


def _as_utc(value: datetime) -> datetime:
    # PostgreSQL refuses offsets beyond +-15:59 and Python years outside 1..9999;
    # normalising here turns both into a 400 instead of a database error.
    try:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ValueError("date-time out of range") from exc


ISO_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}")
IsoDatetime = Annotated[datetime, BeforeValidator(_iso_datetime_only), AfterValidator(_as_utc)]


class BodyIn(BaseModel):
    """Base for JSON request bodies: an object, exact types, no unknown fields.

    (ninja's own Schema reads attributes from any object, so a JSON array would
    pass as an empty body.)
    """

    model_config = ConfigDict(strict=True, extra="forbid")


def _integral_number(value: Any) -> Any:
    # JSON Schema counts 3.0 as an integer; so does the API.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Put after any Field(ge=..., le=...) in Annotated[int, ...] so the bounds stay in
# the JSON schema.
INTEGRAL = BeforeValidator(_integral_number)
