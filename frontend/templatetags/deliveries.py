"""Template helpers for webhook deliveries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from django import template

from common.models import WebhookDelivery

register = template.Library()


@register.filter
def delivery_summary(deliveries: Iterable[WebhookDelivery]) -> list[tuple[str, str, int]]:
    """(status, label, count) per status present, in lifecycle order, from prefetched rows."""
    counts = Counter(d.status for d in deliveries)
    return [
        (status, label, counts[status])
        for status, label in WebhookDelivery.Status.choices
        if counts[status]
    ]
