"""Input guards shared by the API schemas.

PostgreSQL refuses NUL characters and unpaired surrogates in text and in
jsonb; such input must be a 400 naming the field here, not a database error
(500) later. The rule itself is ``common.services.text``, shared with tus and
the services.
"""

from __future__ import annotations

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

from common.services.text import check_text

# Put on any free-text field: refuses NUL and unpaired surrogates.
STORABLE_TEXT = AfterValidator(check_text)
# NUL in the schema too, so clients (and schemathesis) know it is not allowed.
SafeStr = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$"), STORABLE_TEXT]
SafeJsonObject = Annotated[dict[str, Any], AfterValidator(check_text)]


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
