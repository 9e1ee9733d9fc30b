"""Sizes for people: IEC units everywhere, the exact count where it matters."""

from __future__ import annotations

import pytest

from common.sizes import size_exact, size_iec


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (1023, "1023 bytes"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (1024 * 1024 - 1, "1 MiB"),  # 1023.999 KiB rounds up into the next unit
        (50 * 1024**2, "50 MiB"),
        (632_700_000, "603.4 MiB"),
        (5 * 1024**3, "5 GiB"),
        (3 * 1024**4, "3 TiB"),
    ],
)
def test_size_iec(size, text):
    assert size_iec(size) == text


def test_size_exact_adds_the_byte_count_in_groups():
    assert size_exact(5 * 1024**3) == "5 GiB (5 368 709 120 bytes)"
    assert size_exact(52_428_800) == "50 MiB (52 428 800 bytes)"
    assert size_exact(100) == "100 bytes"


def test_a_page_keeps_the_size_on_one_line():
    assert size_exact(2048, space="\xa0") == "2\xa0KiB (2\xa0048\xa0bytes)"
