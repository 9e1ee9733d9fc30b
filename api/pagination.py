"""Limit/offset pages with a total count, bounded so no query parameter can
make the database do unbounded work or overflow."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from ninja import Schema
from pydantic import Field

MAX_LIMIT = 200
MAX_OFFSET = 1_000_000


class PageIn(Schema):
    limit: int = Field(50, ge=1, le=MAX_LIMIT, description="Items per page.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Items to skip.")


def paginate(queryset: QuerySet, page: PageIn) -> dict[str, Any]:
    """``{"count", "limit", "offset", "items"}`` for one page of `queryset`."""
    return {
        "count": queryset.count(),
        "limit": page.limit,
        "offset": page.offset,
        "items": list(queryset[page.offset : page.offset + page.limit]),
    }


class PageOut(Schema):
    count: int
    limit: int
    offset: int
