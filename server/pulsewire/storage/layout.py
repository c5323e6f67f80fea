"""How readings are laid out over time: the resolutions, their bucket widths and block windows. Pure.

Readings arrive as rows in the hot table (`readings`). Once a series' one-hour window has closed,
compaction packs its rows into one raw block and rebuilds the window's buckets in two rollups:
1-minute buckets, kept in one block per day, and 1-hour buckets, kept in one block per 16 days.
Windows and buckets are aligned to the Unix epoch, so every 1-hour bucket is made of whole
1-minute buckets, and every raw window of whole buckets of both.
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Resolution:
    name: str  # as the HTTP answer and `pulsewire db stats` name it
    code: int  # blocks.res
    bucket_ms: int  # 0: raw readings, not buckets
    window_ms: int  # the span of one block

    def window_of(self, ts: int) -> int:
        """The start of the block window holding `ts`."""
        return ts - ts % self.window_ms


RAW = Resolution("raw", 0, 0, HOUR_MS)
MINUTE = Resolution("1m", 1, MINUTE_MS, DAY_MS)
HOUR = Resolution("1h", 2, HOUR_MS, 16 * DAY_MS)
RESOLUTIONS = (RAW, MINUTE, HOUR)
BY_CODE = {r.code: r for r in RESOLUTIONS}
