"""Telemetry reads for the HTTP API, over the hot table and the blocks (docs/storage.md).

Every read of one series is one SQL statement: the hot rows in range and the blocks it needs,
together. A statement sees one snapshot on both backends, so a compaction committing meanwhile
(which moves rows from the hot table into a block) never shows a reading twice or not at all.
A reading that is both in a block and still in the hot table (a resend after its window was
compacted, not yet swept up by the next compaction) counts once, with the block's value: the
first one stored.

Raw reads stream window by window, in the query's order, and stop at `limit`. Bucketed reads are
planned (`plan.py`: coarsest rollup that answers exactly, finer at the edges) and folded exactly
(`fold.py`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Literal, get_args

from sqlalchemy import Connection, select, text

from pulsewire.storage.blockcodec import decode_raw, decode_rollup_aggregates
from pulsewire.storage.fold import Fold, group_rollup
from pulsewire.storage.foldcache import FoldCache
from pulsewire.storage.layout import RAW, Resolution
from pulsewire.storage.plan import Segment, plan
from pulsewire.storage.schema import series

Agg = Literal["avg", "min", "max", "sum", "count"]
AGGREGATES: tuple[Agg, ...] = get_args(Agg)
Order = Literal["asc", "desc"]

Value = float | int | bool | None
# (ts, value) for raw readings and for one aggregate; (bucket, v1, v2, ...) for several.
Point = tuple[int, *tuple[Value, ...]]
Floors = Mapping[Resolution, int]

W = RAW.window_ms


@dataclass(frozen=True, slots=True)
class TelemetryQuery:
    start: int
    end: int  # inclusive
    limit: int
    order: Order
    interval: int | None = None
    # One aggregate, or several (a tuple, in the order the values come back).
    agg: Agg | tuple[Agg, ...] | None = None

    @property
    def aggs(self) -> tuple[Agg, ...]:
        """The aggregates per bucket, in order; avg when none is named; () for raw readings."""
        if self.interval is None:
            return ()
        if self.agg is None:
            return ("avg",)
        return (self.agg,) if isinstance(self.agg, str) else self.agg


@dataclass(frozen=True, slots=True)
class Answer:
    points: list[Point]
    served: tuple[str, ...]  # the resolutions that held the points, coarsest first
    exact: bool  # False: some edge bucket came from a coarser resolution, finer data having expired


def series_ids(conn: Connection, device_id: str) -> dict[str, int]:
    """metric name -> series id for one device."""
    rows = conn.execute(select(series.c.metric, series.c.id).where(series.c.device_id == device_id))
    return {metric: sid for metric, sid in rows}


def read_series(
    conn: Connection, series_id: int, q: TelemetryQuery, floors: Floors, cache: FoldCache | None = None
) -> Answer:
    """One series' answer to `q`: raw readings, or one point per bucket."""
    if q.interval is not None:
        return bucketed(conn, series_id, q, floors, cache)
    return Answer(list(raw_points(conn, series_id, q)), (RAW.name,), True)


# --- raw readings --------------------------------------------------------------------------------

_RAW_SQL = (
    "SELECT ts - ts % {w} AS win, 0 AS kind, ts, value, is_bool, NULL AS data FROM readings "
    "WHERE series_id = :sid AND ts >= :lo AND ts <= :hi "
    "UNION ALL SELECT start, 1, start, NULL, NULL, data FROM blocks "
    "WHERE series_id = :sid AND res = 0 AND start <= :hi AND start > :lo - {w} "
    "ORDER BY win {order}"
).format


def raw_points(conn: Connection, series_id: int, q: TelemetryQuery) -> Iterator[Point]:
    """The series' readings in [start, end], in the query's order, at most `limit`, fetched as needed."""
    sql = text(_RAW_SQL(w=W, order="DESC" if q.order == "desc" else "ASC"))
    result = conn.execution_options(stream_results=True, max_row_buffer=200).execute(
        sql, {"sid": series_id, "lo": q.start, "hi": q.end}
    )
    left = q.limit
    try:
        for _, rows in groupby(result, key=lambda row: row[0]):
            window = _window_points(list(rows), q)
            yield from window[:left]
            left -= len(window)
            if left <= 0:
                return
    finally:
        result.close()


def _window_points(rows: list[Any], q: TelemetryQuery) -> list[Point]:
    """One window's readings from its block and its hot rows, the block's value first."""
    found: dict[int, Point] = {}
    for _, kind, _, _, _, data in rows:
        if kind == 1:
            stamps, values, flags = decode_raw(data)
            i, j = bisect_left(stamps, q.start), bisect_right(stamps, q.end)
            for k in range(i, j):
                found[stamps[k]] = (stamps[k], bool(values[k])) if flags and flags[k] else (stamps[k], values[k])
    for _, kind, ts, value, is_bool, _ in rows:
        if kind == 0 and ts not in found:
            found[ts] = (ts, bool(value)) if is_bool else (ts, value)
    return [found[ts] for ts in sorted(found, reverse=q.order == "desc")]


# --- buckets -------------------------------------------------------------------------------------


def _bucket_sql(segments: list[Segment]) -> tuple[str, dict[str, int]]:
    """Hot rows in range, raw blocks holding any of them, and each segment's blocks: one statement."""
    parts = [
        "SELECT 0 AS kind, ts AS k, value, NULL AS data FROM readings "
        "WHERE series_id = :sid AND ts >= :lo AND ts <= :hi",
        # Raw blocks that hot rows in range fall into: a hot row already in its block counts once.
        f"SELECT 1, b.start, NULL, b.data FROM blocks b WHERE b.series_id = :sid AND b.res = 0 "
        f"AND b.start <= :hi AND b.start > :lo - {W} AND EXISTS (SELECT 1 FROM readings r "
        f"WHERE r.series_id = :sid AND r.ts >= b.start AND r.ts < b.start + {W} AND r.ts >= :lo AND r.ts <= :hi)",
    ]
    params: dict[str, int] = {}
    for i, seg in enumerate(segments):
        parts.append(
            f"SELECT 1, start, res, data FROM blocks WHERE series_id = :sid AND res = {seg.res.code} "
            f"AND start <= :hi{i} AND start > :lo{i} - {seg.res.window_ms}"
        )
        params |= {f"lo{i}": seg.lo, f"hi{i}": seg.hi}
    return " UNION ALL ".join(parts), params


def bucketed(
    conn: Connection, series_id: int, q: TelemetryQuery, floors: Floors, cache: FoldCache | None = None
) -> Answer:
    """One point per bucket holding readings, each aggregate exact (fold.py), in order, at most `limit`."""
    assert q.interval is not None
    segments = plan(q.start, q.end, q.interval, floors)
    sql, params = _bucket_sql(segments)
    hot: dict[int, float] = {}
    raw: dict[int, tuple[list[int], list[float], Any]] = {}
    rollups: dict[tuple[int, int], bytes] = {}
    for kind, key, value, data in conn.execute(text(sql), {"sid": series_id, "lo": q.start, "hi": q.end, **params}):
        if kind == 0:
            hot[key] = value
            continue
        code = RAW.code if value is None else int(value)  # the segment rows carry their resolution there
        if code == RAW.code:
            if key not in raw:
                raw[key] = decode_raw(data)
        else:
            rollups[(code, key)] = bytes(data)
    fold = Fold(q.interval)
    served = _fold_raw(fold, segments, raw)
    served |= _fold_rollups(fold, series_id, segments, rollups, cache)
    fresh = _not_in_blocks(hot, raw)
    if fresh:
        fold.add_values(fresh, [hot[ts] for ts in fresh])
        served.add(RAW)
    names = tuple(r.name for r in sorted(served, key=lambda r: -r.code))
    exact = all(seg.exact for seg in segments if seg.res in served)
    return Answer(fold.points(q.aggs, q.order == "desc", q.limit), names, exact)  # type: ignore[arg-type]


def _fold_raw(fold: Fold, segments: list[Segment], raw: dict[int, Any]) -> set[Resolution]:
    """The raw blocks' readings that raw segments cover."""
    served: set[Resolution] = set()
    for seg in (s for s in segments if s.res is RAW):
        for start, (stamps, values, _) in raw.items():
            if start <= seg.hi and start + W > seg.lo:
                i, j = bisect_left(stamps, seg.lo), bisect_right(stamps, seg.hi)
                if i < j:
                    fold.add_values(stamps[i:j], values[i:j])
                    served.add(RAW)
    return served


def _fold_rollups(
    fold: Fold, series_id: int, segments: list[Segment], rollups: dict[tuple[int, int], bytes], cache: FoldCache | None
) -> set[Resolution]:
    """The rollup buckets that rollup segments cover; a whole block folded into wider buckets is
    taken from (or left in) the cache."""
    served: set[Resolution] = set()
    for seg in (s for s in segments if s.res is not RAW):
        res, width = seg.res, fold.width
        for (code, start), data in rollups.items():
            if code != res.code or start > seg.hi or start + res.window_ms <= seg.lo:
                continue
            whole = seg.lo <= start and start + res.window_ms - 1 <= seg.hi
            if cache is not None and whole and width > res.bucket_ms:
                key = (series_id, code, start, data[-4:], width)
                partials = cache.get(key)
                if partials is None:
                    partials = group_rollup(decode_rollup_aggregates(data), seg.lo, seg.hi, width)
                    cache.put(key, partials)
                fold.add_partials(partials)
                found = bool(partials)
            else:
                rollup = decode_rollup_aggregates(data)
                found = bisect_left(rollup.start, seg.lo) < bisect_right(rollup.start, seg.hi)
                fold.add_rollup(rollup, res.bucket_ms, seg.lo, seg.hi)
            if found:
                served.add(res)
    return served


def _not_in_blocks(hot: dict[int, float], raw: dict[int, Any]) -> list[int]:
    """The hot rows' stamps that their window's block does not already hold, in order."""
    held: dict[int, set[int]] = {}
    fresh = []
    for ts in sorted(hot):
        start = ts - ts % W
        if start in raw:
            if start not in held:
                held[start] = set(raw[start][0])
            if ts in held[start]:
                continue
        fresh.append(ts)
    return fresh
