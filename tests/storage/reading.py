"""Reading a series back in storage tests, with every resolution kept."""

from __future__ import annotations

from sqlalchemy import Connection

from pulsewire.storage.queries import Point, TelemetryQuery, read_series
from pulsewire.storage.retention import Retention

ALL_KEPT = Retention(None, None, None).floors(0)  # every resolution from the epoch on


def read_points(conn: Connection, series_id: int, q: TelemetryQuery) -> list[Point]:
    return read_series(conn, series_id, q, ALL_KEPT).points
