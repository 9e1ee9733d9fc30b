"""Pagination that stays cheap on very long lists.

Django's Paginator counts every row to know the number of pages; on an
endpoint with 100 000 deliveries that count costs more than the page itself.
Counting stops at COUNT_CAP rows: beyond it the page says "of N+" and the
rows further back are reached through the page's filters (status, time).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.core.paginator import Paginator
from django.db.models import QuerySet

COUNT_CAP = 10_000


class CappedPaginator(Paginator):
    # Only given querysets: the capped count is a query.
    object_list: QuerySet[Any]

    @cached_property
    def count(self) -> int:
        counted = self.object_list.values("pk")[: COUNT_CAP + 1].count()
        self.capped = counted > COUNT_CAP
        return min(counted, COUNT_CAP)

    capped = False
