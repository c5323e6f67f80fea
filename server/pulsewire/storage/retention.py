"""How long each resolution is kept, and the sweep that removes what has expired.

The sweep deletes whole blocks whose window lies wholly before their resolution's cutoff,
oldest first through the (res, start) index, a bounded number per transaction so ingest (the
same single writer) waits for at most one small delete at a time. Readings are never deleted
row by row: raw readings older than the raw cutoff are refused at ingest (channels/device.py),
so the hot table never holds any for long.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from pulsewire.storage.layout import DAY_MS, HOUR, MINUTE, RAW, RESOLUTIONS, Resolution
from pulsewire.storage.plan import floors_for


@dataclass(frozen=True, slots=True)
class Retention:
    """Days each resolution is kept; None: for ever."""

    raw_days: float | None = 30
    minute_days: float | None = 180
    hour_days: float | None = None

    def days(self, res: Resolution) -> float | None:
        return {RAW: self.raw_days, MINUTE: self.minute_days, HOUR: self.hour_days}[res]

    def cutoffs(self, now: int) -> dict[Resolution, int | None]:
        """Per resolution, the oldest ts still kept at `now` (None: everything is kept)."""
        return {res: _cutoff(self.days(res), now) for res in RESOLUTIONS}

    def floors(self, now: int) -> dict[Resolution, int]:
        return floors_for(self.cutoffs(now))

    def oldest_accepted(self, now: int) -> int | None:
        """The oldest reading ts ingest takes at `now`: older ones would be swept at once. (Asked for
        every batch: no dictionary made.)"""
        return _cutoff(self.raw_days, now)


def _cutoff(days: float | None, now: int) -> int | None:
    return None if days is None else now - int(days * DAY_MS)


SWEEP_BATCH = 500  # blocks per transaction


def sweep_some(conn: Connection, res: Resolution, cutoff: int, limit: int = SWEEP_BATCH) -> int:
    """Delete up to `limit` blocks of `res` whose window ended at or before `cutoff`; how many went."""
    oldest = "SELECT series_id, res, start FROM blocks WHERE res = :res AND start <= :last ORDER BY start LIMIT :limit"
    if conn.dialect.name == "postgresql":  # a join, so each block goes by its primary key
        sql = (
            f"DELETE FROM blocks b USING ({oldest}) o "
            "WHERE b.series_id = o.series_id AND b.res = o.res AND b.start = o.start"
        )
    else:
        sql = f"DELETE FROM blocks WHERE (series_id, res, start) IN ({oldest})"
    return conn.execute(text(sql), {"res": res.code, "last": cutoff - res.window_ms, "limit": limit}).rowcount
