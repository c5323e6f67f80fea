"""One byte range of a Range header (pulsewire.http.byteranges), on plain values."""

from __future__ import annotations

import pytest

from pulsewire.http.byteranges import RangeError, byte_range


@pytest.mark.parametrize(
    "header, size, expected",
    [
        ("bytes=0-99", 1000, (0, 99)),
        ("bytes=100-", 1000, (100, 999)),
        ("bytes=-100", 1000, (900, 999)),
        ("bytes=-5000", 1000, (0, 999)),
        ("bytes=990-2000", 1000, (990, 999)),
        ("bytes=999-999", 1000, (999, 999)),
        (" bytes=0-0 ", 1, (0, 0)),
    ],
)
def test_ranges_served(header: str, size: int, expected: tuple[int, int]) -> None:
    assert byte_range(header, size) == expected


@pytest.mark.parametrize(
    "header, size",
    [
        ("bytes=1000-", 1000),
        ("bytes=5-2", 1000),
        ("bytes=-0", 1000),
        ("bytes=-", 1000),
        ("bytes=0-1,5-6", 1000),
        ("items=0-1", 1000),
        ("bytes=0-1", 0),
        ("bytes=-1", 0),
        ("bytes=99999999999999999999-", 10),
    ],
)
def test_ranges_refused(header: str, size: int) -> None:
    with pytest.raises(RangeError):
        byte_range(header, size)
