"""Aggregates per query bucket, exactly, from raw readings and rollup buckets. Pure.

A value counts as the decimal it was sent as (its shortest repr, the digits the JSON carried),
so sums are exact integers at a decimal scale whatever order the parts come in, and an average is
one correctly rounded division: the same answer from raw readings, from 1-minute or from 1-hour
rollups, and equal to the plain reference (`tests/storage/test_fold.py`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from itertools import groupby

from pulsewire.storage.blockcodec import Rollup, decimal_of, to_float

Value = float | int
# One query bucket: [count, {scale: exact sum at that scale}, min, max]
_Acc = list


def _ratio(num: int, den: int) -> float:
    """num / den correctly rounded; +-inf beyond the double range."""
    try:
        return num / den
    except OverflowError:
        return float("inf") if (num < 0) == (den < 0) else float("-inf")


class Fold:
    """Accumulates the buckets of one series for one query (`width`: the bucket width in ms)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self._acc: dict[int, _Acc] = {}

    def add_values(self, stamps: Iterable[int], values: Iterable[float]) -> None:
        """Raw readings, each counted in the bucket holding its ts."""
        w, acc = self.width, self._acc
        for ts, v in zip(stamps, values, strict=True):
            m, e = decimal_of(v)
            a = acc.get(ts - ts % w)
            if a is None:
                acc[ts - ts % w] = [1, {e: m}, v, v]
                continue
            a[0] += 1
            sums = a[1]
            sums[e] = sums.get(e, 0) + m
            if v < a[2]:
                a[2] = v
            if v > a[3]:
                a[3] = v

    def add_rollup(self, r: Rollup, lo: int, hi: int) -> None:
        """The rollup's buckets whose start lies in [lo, hi], each counted in the bucket holding its start."""
        i, j = bisect_left(r.start, lo), bisect_right(r.start, hi)
        if i >= j:
            return
        w, acc, scale = self.width, self._acc, r.scale
        keys = [s - s % w for s in r.start[i:j]]
        at = i
        for key, run in groupby(keys):
            end = at + sum(1 for _ in run)
            count, total = sum(r.count[at:end]), sum(r.sum_m[at:end])
            low, high = to_float(min(r.min_m[at:end]), scale), to_float(max(r.max_m[at:end]), scale)
            at = end
            a = acc.get(key)
            if a is None:
                acc[key] = [count, {scale: total}, low, high]
                continue
            a[0] += count
            a[1][scale] = a[1].get(scale, 0) + total
            a[2] = min(a[2], low)
            a[3] = max(a[3], high)

    def points(self, aggs: Sequence[str], descending: bool, limit: int) -> list[tuple[Value, ...]]:
        """(bucket, value per aggregate...) for the buckets holding readings, in order, at most `limit`."""
        keys = sorted(self._acc, reverse=descending)[:limit]
        return [(key, *(_aggregate(self._acc[key], agg) for agg in aggs)) for key in keys]


def _aggregate(a: _Acc, agg: str) -> Value:
    count, sums, low, high = a
    if agg == "count":
        return count
    if agg == "min":
        return low
    if agg == "max":
        return high
    scale = max(sums)
    total = sum(m * 10 ** (scale - e) for e, m in sums.items())
    if agg == "sum":
        return to_float(total, scale)
    if agg == "avg":
        return _ratio(total, count * 10**scale) if scale >= 0 else _ratio(total * 10**-scale, count)
    raise ValueError(f"unknown aggregate {agg!r}")
