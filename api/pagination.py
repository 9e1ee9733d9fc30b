"""Pages of a list, bounded so no query parameter can make the database do
unbounded work or overflow.

Two ways through a list: ``limit``/``offset`` pages, and (on the newest-first
file lists) ``cursor``, the ``next`` of the page before, which continues
after its last item through the index, as fast on page 20 000 as on page 1.
``count`` is exact when the caller knows it without counting (the kept file
totals) or when at most ``COUNT_CAP`` items match; past that it is ``null``
rather than a scan of every matching row (~170 ms at 1 000 000 files).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db.models import Q, QuerySet
from ninja import Schema
from pydantic import Field

from common.exceptions import ValidationError

MAX_LIMIT = 200
MAX_OFFSET = 1_000_000
COUNT_CAP = 10_000


class PageIn(Schema):
    limit: int = Field(50, ge=1, le=MAX_LIMIT, description="Items per page.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Items to skip.")


class CursorPageIn(PageIn):
    cursor: str | None = Field(
        None,
        max_length=200,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The `next` of the page before: the items after its last one "
        "(same filters). Not together with `offset`.",
    )


def capped_count(queryset: QuerySet) -> int | None:
    """The number of items, or None when more than COUNT_CAP match."""
    counted = queryset.order_by().values("pk")[: COUNT_CAP + 1].count()
    return counted if counted <= COUNT_CAP else None


def paginate(queryset: QuerySet, page: PageIn) -> dict[str, Any]:
    """``{"count", "limit", "offset", "items"}`` for one page of `queryset`."""
    return {
        "count": capped_count(queryset),
        "limit": page.limit,
        "offset": page.offset,
        "items": list(queryset[page.offset : page.offset + page.limit]),
    }


def _cursor_encode(item: Any) -> str:
    """The cursor after `item`, a model instance or a ``values()`` dict."""
    if isinstance(item, dict):
        created_at, pk = item["created_at"], item["id"]
    else:
        created_at, pk = item.created_at, item.pk
    raw = f"{created_at.isoformat()} {pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_decode(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, pk = raw.partition(" ")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError("naive time")
        return created_at, UUID(pk)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ValidationError(
            "cursor is not one this API gave out: pass a page's `next` as it came.",
            details={"field": "cursor"},
        ) from None


def paginate_newest_first(
    queryset: QuerySet, page: CursorPageIn, *, count: int | None = None
) -> dict[str, Any]:
    """``{"count", "limit", "offset", "next", "items"}`` for a list ordered by
    (created_at, id) descending.

    `count` is the total when the caller keeps it; otherwise it is counted up
    to COUNT_CAP. One row more than the page is read to know whether a
    ``next`` exists. The cursor bounds ``created_at`` (so the index range
    starts at the cursor) and breaks ties on the id.
    """
    matching = queryset
    if page.cursor is not None:
        if page.offset:
            raise ValidationError(
                "Give either `cursor` or `offset`, not both.",
                details={"field": "offset"},
            )
        created_at, pk = _cursor_decode(page.cursor)
        queryset = queryset.filter(created_at__lte=created_at).filter(
            Q(created_at__lt=created_at) | Q(pk__lt=pk)
        )
    ordered = queryset.order_by("-created_at", "-pk")
    items = list(ordered[page.offset : page.offset + page.limit + 1])
    more = len(items) > page.limit
    items = items[: page.limit]
    return {
        "count": count if count is not None else capped_count(matching),
        "limit": page.limit,
        "offset": page.offset,
        "next": _cursor_encode(items[-1]) if more else None,
        "items": items,
    }


class PageOut(Schema):
    count: int | None = Field(
        description="All matching items: exact up to 10 000, or when the portal keeps the "
        "total (file lists filtered by nothing but `status`); null beyond."
    )
    limit: int
    offset: int


class NewestFirstPageOut(PageOut):
    next: str | None = Field(
        description="Pass as `cursor` (same filters) for the next page; null on the last page."
    )
