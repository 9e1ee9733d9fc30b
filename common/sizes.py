"""The one way Doorito writes a number of bytes for people: IEC binary units.

Every limit is a power of two (50 MiB, 5 GiB), and Django's
``filesizeformat`` and Uppy divide by 1024 but print "MB"/"GB", so the same
limit appeared as "5.0 GB", "5 GiB" and "5368709120 bytes" on three screens.
Pages, API error messages and the docs all use these two functions (the
upload page's widget is relabelled to match, ``upload.js``); where the exact
value matters (a limit someone hit), the byte count follows in brackets.
"""

from __future__ import annotations

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def size_iec(size: int, *, space: str = " ") -> str:
    """``12 bytes``, ``50 MiB``, ``603.4 MiB``: the largest unit, one decimal
    at most (none when it would be ``.0``)."""
    if size < 1024:
        return f"{size}{space}byte{'' if size == 1 else 's'}"
    value = float(size)
    unit = ""
    for unit in _UNITS:
        value /= 1024
        # 1023.96 KiB rounds to 1024.0: that is 1 MiB.
        if round(value, 1) < 1024 or unit == _UNITS[-1]:
            break
    text = f"{value:.1f}".removesuffix(".0")
    return f"{text}{space}{unit}"


def size_exact(size: int, *, space: str = " ") -> str:
    """``5 GiB (5 368 709 120 bytes)``: the readable size and the exact count,
    in groups of three (the SI way, which no locale reads as a decimal point)."""
    if size < 1024:
        return size_iec(size, space=space)
    grouped = f"{size:,}".replace(",", space)
    return f"{size_iec(size, space=space)} ({grouped}{space}bytes)"
