"""Telemetry reads for the HTTP API. Aggregation happens in SQL, one row per bucket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import BigInteger, ColumnElement, Connection, Select, false, func, literal_column, select

from pulsewire.storage.schema import readings, series

Agg = Literal["avg", "min", "max", "sum", "count"]
Order = Literal["asc", "desc"]

_AGG: dict[str, Callable[[ColumnElement[Any]], ColumnElement[Any]]] = {
    "avg": func.avg,
    "min": func.min,
    "max": func.max,
    "sum": func.sum,
    "count": func.count,
}


@dataclass(frozen=True, slots=True)
class TelemetryQuery:
    start: int
    end: int  # inclusive
    limit: int
    order: Order
    interval: int | None = None
    agg: Agg | None = None


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
        fn = _AGG[q.agg or "avg"]
        cols = select(bucket, fn(readings.c.value), false()).where(*where).group_by(bucket)
        key = bucket
    return cols.order_by(key.asc() if q.order == "asc" else key.desc()).limit(q.limit)


def _point(ts: int, value: float | int | None, is_bool: bool) -> tuple[int, float | int | bool | None]:
    return ts, (bool(value) if is_bool else value)


def read_series(conn: Connection, series_id: int, q: TelemetryQuery) -> list[tuple[int, float | int | bool | None]]:
    return [_point(ts, value, is_bool) for ts, value, is_bool in conn.execute(series_statement(series_id, q))]


def stream_series(
    conn: Connection, series_id: int, q: TelemetryQuery, chunk: int = 2000
) -> Iterator[list[tuple[int, float | int | bool | None]]]:
    """The same rows as `read_series`, fetched a chunk at a time (server-side cursor where supported)."""
    result = conn.execution_options(stream_results=True, max_row_buffer=chunk).execute(series_statement(series_id, q))
    for rows in result.partitions(chunk):
        yield [_point(ts, value, is_bool) for ts, value, is_bool in rows]
