"""Aggregates per query bucket, exactly, from raw readings and rollup buckets. Pure.

A value counts as the decimal it was sent as (its shortest repr, the digits the JSON carried),
so sums are exact integers at a decimal scale whatever order the parts come in, and an average is
one correctly rounded division: the same answer from raw readings, from 1-minute or from 1-hour
rollups, and equal to the plain reference (`tests/storage/test_queries.py`).

Each query bucket keeps its count, and its sum, minimum and maximum as integers at one decimal
scale (raised when a finer value joins); floats are made only for the aggregates asked, at the end.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence

from pulsewire.storage.blockcodec import Rollup, decimal_of, to_float

Value = float | int
# Query buckets folded from one rollup block: (query bucket, count, scale, sum, min, max).
Partial = tuple[int, int, int, int, int, int]
# One query bucket: [count, scale, sum, min, max], the last three integers at `scale`.
_Acc = list[int]
_COUNT, _SCALE, _SUM, _MIN, _MAX = range(5)


def _ratio(num: int, den: int) -> float:
    """num / den correctly rounded; +-inf beyond the double range."""
    try:
        return num / den
    except OverflowError:
        return float("inf") if (num < 0) == (den < 0) else float("-inf")


def _join(acc: dict[int, _Acc], key: int, count: int, scale: int, total: int, low: int, high: int) -> None:
    a = acc.get(key)
    if a is None:
        acc[key] = [count, scale, total, low, high]
        return
    if scale != a[_SCALE]:  # bring both to the finer scale
        if scale > a[_SCALE]:
            up = 10 ** (scale - a[_SCALE])
            a[_SCALE], a[_SUM], a[_MIN], a[_MAX] = scale, a[_SUM] * up, a[_MIN] * up, a[_MAX] * up
        else:
            up = 10 ** (a[_SCALE] - scale)
            total, low, high = total * up, low * up, high * up
    a[_COUNT] += count
    a[_SUM] += total
    if low < a[_MIN]:
        a[_MIN] = low
    if high > a[_MAX]:
        a[_MAX] = high


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
            if e < 0:  # 1e300 is (1, -300): bucket scales stay >= 0
                m, e = m * 10**-e, 0
            _join(acc, ts - ts % w, 1, e, m, m, m)

    def add_rollup(self, r: Rollup, bucket_ms: int, lo: int, hi: int) -> None:
        """The rollup's buckets (`bucket_ms` wide) whose start lies in [lo, hi], each counted in the
        query bucket holding its start."""
        i, end = bisect_left(r.start, lo), bisect_right(r.start, hi)
        w, acc, scale, starts = self.width, self._acc, r.scale, r.start
        if self.width <= bucket_ms:  # each rollup bucket falls in a query bucket of its own
            keys = [s - s % w for s in starts[i:end]]
            columns = (r.count[i:end], [scale] * len(keys), r.sum_m[i:end], r.min_m[i:end], r.max_m[i:end])
            if acc.keys().isdisjoint(keys):
                acc.update(zip(keys, map(list, zip(*columns, strict=True)), strict=True))
                return
            for key, count, _, total, low, high in zip(keys, *columns, strict=True):
                _join(acc, key, count, scale, total, low, high)
            return
        self.add_partials(group_rollup(r, lo, hi, w))

    def add_partials(self, partials: Iterable[Partial]) -> None:
        """Query buckets already folded from a rollup (`group_rollup`)."""
        acc = self._acc
        for key, count, scale, total, low, high in partials:
            _join(acc, key, count, scale, total, low, high)

    def points(self, aggs: Sequence[str], descending: bool, limit: int) -> list[tuple[Value, ...]]:
        """(bucket, value per aggregate...) for the buckets holding readings, in order, at most `limit`."""
        keys = sorted(self._acc, reverse=descending)[:limit]
        accs = [self._acc[key] for key in keys]
        columns = [_column(accs, agg) for agg in aggs]
        return list(zip(keys, *columns, strict=True))


def group_rollup(r: Rollup, lo: int, hi: int, width: int) -> list[Partial]:
    """The rollup's buckets whose start lies in [lo, hi], added up per query bucket of `width`
    (a multiple of the rollup's bucket width): (query bucket, count, scale, sum, min, max)."""
    i, end = bisect_left(r.start, lo), bisect_right(r.start, hi)
    scale, starts, out = r.scale, r.start, []
    while i < end:
        key = starts[i] - starts[i] % width
        j = bisect_left(starts, key + width, i + 1, end)
        out.append((key, sum(r.count[i:j]), scale, sum(r.sum_m[i:j]), min(r.min_m[i:j]), max(r.max_m[i:j])))
        i = j
    return out


def _column(accs: list[_Acc], agg: str) -> list[Value]:
    if agg == "count":
        return [a[_COUNT] for a in accs]
    if agg == "min":
        return [to_float(a[_MIN], a[_SCALE]) for a in accs]
    if agg == "max":
        return [to_float(a[_MAX], a[_SCALE]) for a in accs]
    if agg == "sum":
        return [to_float(a[_SUM], a[_SCALE]) for a in accs]
    if agg == "avg":
        return [_ratio(a[_SUM], a[_COUNT] * 10 ** a[_SCALE]) for a in accs]
    raise ValueError(f"unknown aggregate {agg!r}")
