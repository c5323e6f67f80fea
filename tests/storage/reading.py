"""Reading a series back in storage tests, with every resolution kept."""

from __future__ import annotations

from sqlalchemy import Connection

from pulsewire.storage.layout import HOUR, MINUTE, RAW
from pulsewire.storage.queries import Point, TelemetryQuery, read_series

ALL_KEPT = {RAW: 0, MINUTE: 0, HOUR: 0}


def read_points(conn: Connection, series_id: int, q: TelemetryQuery) -> list[Point]:
    return read_series(conn, series_id, q, ALL_KEPT).points
