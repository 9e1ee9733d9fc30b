"""Template helpers for the portal: times people can read (relative, and exact in
the reader's zone beside it) and sizes in IEC units."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html

from common.sizes import size_exact, size_iec

register = template.Library()

_UNITS = [(86400, "d"), (3600, "h"), (60, "min")]


def relative(value: datetime, now: datetime | None = None) -> str:
    """`in 5 h`, `3 min ago`, `just now`: the largest unit, rounded to the nearest.

    Rounded, not cut: cut, a 7-day upload request read "in 6 d" and a 2-hour
    share link "in 1 h" the moment they were made (the exact time is beside
    it for anyone who needs the minute). A count that rounds up to the next
    unit is said in it: "in 1 d", not "in 24 h".
    """
    now = now or timezone.now()
    seconds = (value - now).total_seconds()
    span = abs(seconds)
    if span < 60:
        return "just now"
    index = next(i for i, (size, _unit) in enumerate(_UNITS) if span >= size)
    size, unit = _UNITS[index]
    if index and int(span / size + 0.5) * size >= _UNITS[index - 1][0]:
        size, unit = _UNITS[index - 1]
    text = f"{int(span / size + 0.5)} {unit}"
    return f"in {text}" if seconds > 0 else f"{text} ago"


def _local(value: datetime) -> datetime:
    """``value`` in the reader's zone (``BrowserTimeZoneMiddleware``; UTC without it)."""
    return timezone.localtime(value)


def exact(value: datetime, *, seconds: bool = False) -> str:
    """``2026-12-07 18:23 CET``: to the minute (or second), with the zone it is in."""
    local = _local(value)
    shown = local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{shown} {local.tzname()}"


@register.simple_tag
def when(value: datetime | None, empty: str = "—", seconds: bool = False) -> str:
    """A ``<time>``: the relative time for a glance and the exact one beside it,
    in the reader's zone; the seconds and the zone's full name on hover."""
    if value is None:
        return empty
    full = f"{exact(value, seconds=True)} ({timezone.get_current_timezone_name()})"
    return format_html(
        '<time datetime="{}" title="{}"><span class="relative">{}</span>'
        ' <span class="exact">{}</span></time>',
        value.astimezone(UTC).isoformat(),
        full,
        relative(value),
        exact(value, seconds=seconds),
    )


@register.filter
def exact_time(value: datetime | None) -> str:
    """``2026-12-07 18:23:05 CET``: detail pages, where seconds can matter."""
    return "—" if value is None else exact(value, seconds=True)


@register.simple_tag
def time_zone_name() -> str:
    """The zone the page's times are in (``Europe/Berlin``, ``UTC``)."""
    return timezone.get_current_timezone_name()


@register.filter
def size(value: int | None) -> str:
    """``603.4 MiB``, never broken across lines (a no-break space before the unit)."""
    return "—" if value is None else size_iec(int(value), space="\xa0")


@register.filter
def size_bytes(value: int | None) -> str:
    """``5 GiB (5 368 709 120 bytes)``, for limits and a file's own page."""
    return "—" if value is None else size_exact(int(value), space="\xa0")
