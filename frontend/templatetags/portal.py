"""Template helpers for the portal: times people can read, with the exact one on hover."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html

from common.sizes import size_exact, size_iec

register = template.Library()

_UNITS = [(86400, "d"), (3600, "h"), (60, "min")]


def relative(value: datetime, now: datetime | None = None) -> str:
    """`in 5 h`, `3 min ago`, `just now`: the largest whole unit, as a glance needs."""
    now = now or timezone.now()
    seconds = (value - now).total_seconds()
    span = abs(seconds)
    if span < 60:
        return "just now"
    size, unit = next((size, unit) for size, unit in _UNITS if span >= size)
    text = f"{int(span // size)} {unit}"
    return f"in {text}" if seconds > 0 else f"{text} ago"


@register.simple_tag
def when(value: datetime | None, empty: str = "—") -> str:
    """A ``<time>`` element: relative text, exact UTC time in ``title`` and ``datetime``."""
    if value is None:
        return empty
    exact = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return format_html(
        '<time datetime="{}" title="{}">{}</time>', value.isoformat(), exact, relative(value)
    )


@register.filter
def exact_time(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@register.filter
def size(value: int | None) -> str:
    """``603.4 MiB``, never broken across lines (a no-break space before the unit)."""
    return "—" if value is None else size_iec(int(value), space="\xa0")


@register.filter
def size_bytes(value: int | None) -> str:
    """``5 GiB (5 368 709 120 bytes)``, for limits and a file's own page."""
    return "—" if value is None else size_exact(int(value), space="\xa0")
