"""Telemetry reads for the HTTP API. Aggregation happens in SQL, one row per bucket.

On SQLite a bucketed read walks the buckets: for each bucket start, one aggregate over a primary
key range. `GROUP BY (ts / w) * w` would sort every row of the range in a temporary b-tree (SQLite
cannot tell that the bucket grows with `ts`); the walk reads them in key order and sorts nothing,
2.5-3.5x faster for a day of 1-minute buckets. Only the buckets between the first and the last
reading in the range are visited; a range with more of them than `WALK_MAX_BUCKETS` (mostly empty
ones, likely) uses GROUP BY. PostgreSQL hashes the groups and needs no walk.

A query may ask for several aggregates per bucket (a chart draws avg with a min..max band). Each
point is then `(bucket, v1, v2, ...)`, the values in the order asked; the walk computes each
aggregate over the bucket's key range on its own, which keeps every step a plain range aggregate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sqlalchemy import BigInteger, ColumnElement, Connection, Select, false, func, literal_column, select, text

from pulsewire.storage.schema import readings, series

Agg = Literal["avg", "min", "max", "sum", "count"]
AGGREGATES: tuple[Agg, ...] = get_args(Agg)
Order = Literal["asc", "desc"]

_AGG: dict[str, Callable[[ColumnElement[Any]], ColumnElement[Any]]] = {
    "avg": func.avg,
    "min": func.min,
    "max": func.max,
    "sum": func.sum,
    "count": func.count,
}


WALK_MAX_BUCKETS = 20_000

Value = float | int | bool | None
# (ts, value) for raw readings and for one aggregate; (bucket, v1, v2, ...) for several.
Point = tuple[int, *tuple[Value, ...]]
Row = tuple[Any, ...]  # (ts or bucket start, value(s)..., is_bool)


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


def series_ids(conn: Connection, device_id: str) -> dict[str, int]:
    """metric name -> series id for one device."""
    rows = conn.execute(select(series.c.metric, series.c.id).where(series.c.device_id == device_id))
    return {metric: sid for metric, sid in rows}


def series_statement(series_id: int, q: TelemetryQuery) -> Select[Any]:
    """The SELECT for one series and query: raw rows, or one row per bucket."""
    where = (readings.c.series_id == series_id, readings.c.ts >= q.start, readings.c.ts <= q.end)
    if q.interval is None:
        cols = select(readings.c.ts, readings.c.value, readings.c.is_bool).where(*where)
        key: ColumnElement[Any] = readings.c.ts
    else:
        # The interval is inlined (a validated int), so GROUP BY and SELECT name the same expression.
        # Floor division is exact on both backends because timestamps are never negative.
        width = literal_column(str(int(q.interval)), BigInteger)
        bucket = ((readings.c.ts // width) * width).label("bucket")
        values = [_AGG[agg](readings.c.value) for agg in q.aggs]
        cols = select(bucket, *values, false()).where(*where).group_by(bucket)
        key = bucket
    return cols.order_by(key.asc() if q.order == "asc" else key.desc()).limit(q.limit)


def _point(row: Row) -> Point:
    ts, *values, is_bool = row
    return (ts, *(bool(v) for v in values)) if is_bool else (ts, *values)


def read_series(conn: Connection, series_id: int, q: TelemetryQuery) -> list[Point]:
    return [_point(row) for row in _rows(conn, series_id, q)]


def stream_series(conn: Connection, series_id: int, q: TelemetryQuery, chunk: int = 2000) -> Iterator[list[Point]]:
    """The same rows as `read_series`, fetched a chunk at a time (server-side cursor where supported)."""
    batch: list[Point] = []
    for row in _rows(conn, series_id, q, chunk):
        batch.append(_point(row))
        if len(batch) == chunk:
            yield batch
            batch = []
    if batch:
        yield batch


def _rows(conn: Connection, series_id: int, q: TelemetryQuery, chunk: int | None = None) -> Iterator[Row]:
    """The rows of one series; with `chunk`, fetched that many at a time (server-side cursor where supported)."""
    walk = _walk_span(conn, series_id, q) if q.interval is not None and conn.dialect.name == "sqlite" else None
    if walk is not None:
        yield from _walk(conn, series_id, q, *walk)
        return
    if chunk is None:
        yield from conn.execute(series_statement(series_id, q))  # type: ignore[misc]
        return
    result = conn.execution_options(stream_results=True, max_row_buffer=chunk).execute(series_statement(series_id, q))
    for rows in result.partitions(chunk):
        yield from rows  # type: ignore[misc]


def _walk_span(conn: Connection, series_id: int, q: TelemetryQuery) -> tuple[int, int] | None:
    """(first, last) bucket start holding readings in the range, or None to use GROUP BY instead.

    Two primary-key lookups. An empty range gives an empty span (first > last)."""
    assert q.interval is not None
    found = conn.execute(
        text(
            "SELECT (SELECT min(ts) FROM readings WHERE series_id = :sid AND ts >= :lo AND ts <= :hi), "
            "(SELECT max(ts) FROM readings WHERE series_id = :sid AND ts >= :lo AND ts <= :hi)"
        ),
        {"sid": series_id, "lo": q.start, "hi": q.end},
    ).one()
    if found[0] is None:
        return 1, 0
    width = q.interval
    first, last = found[0] // width * width, found[1] // width * width
    return None if (last - first) // width + 1 > WALK_MAX_BUCKETS else (first, last)


def _walk_sql(aggs: tuple[Agg, ...]) -> str:
    """The walk's SQL: the bucket starts, and per bucket one range aggregate per aggregate asked."""
    unknown = [agg for agg in aggs if agg not in _AGG]
    if unknown or not aggs:  # the names are put into the SQL text
        raise ValueError(f"unknown aggregate {unknown[0] if unknown else ''!r}")
    values = ", ".join(
        f"(SELECT {agg}(value) FROM readings WHERE series_id = :sid "
        "AND ts >= max(s, :lo) AND ts <= min(s + :width - 1, :hi))"
        for agg in aggs
    )
    return (
        "WITH RECURSIVE b(s) AS (SELECT :start UNION ALL "
        "SELECT s + :step FROM b WHERE s + :step BETWEEN :first AND :last) "
        f"SELECT s, {values} FROM b"
    )


def _walk(conn: Connection, series_id: int, q: TelemetryQuery, first: int, last: int) -> Iterator[Row]:
    """Each bucket's aggregates, in the query's order, empty buckets skipped, at most `limit`."""
    assert q.interval is not None
    if first > last:
        return
    aggs = q.aggs
    start, step = (first, q.interval) if q.order == "asc" else (last, -q.interval)
    rows = conn.execute(
        text(_walk_sql(aggs)),
        {
            "start": start,
            "step": step,
            "first": first,
            "last": last,
            "sid": series_id,
            "lo": q.start,
            "hi": q.end,
            "width": q.interval,
        },
    )
    left = q.limit
    # Every aggregate agrees on an empty bucket; the first one tells: count gives 0, the others NULL.
    empty = 0 if aggs[0] == "count" else None
    for bucket, *values in rows:
        if values[0] is None or values[0] == empty:
            continue
        yield (bucket, *values, False)
        left -= 1
        if left == 0:
            rows.close()
            return
