"""Compaction: each closed hour of a series moves from hot rows into one raw block, and its buckets
into the series' 1-minute and 1-hour rollups, in the same transaction.

The rows are taken with DELETE ... RETURNING, so exactly the rows removed are the rows packed,
whatever else writes meanwhile. A window compacted before (late readings arrived since) is
merged with its block, the block's values first: a resend of a reading already packed stores
nothing new. Rollup buckets are rebuilt from the window's complete raw readings, so they are
never added to twice.

The functions run inside a transaction of the caller's: the server's writer (`upkeep.py`) or
`pulsewire db compact`. A step packs a series' closed hours of one day, at most about STEP_VALUES
readings (whole hours), so a writer running steps between group commits holds ingest up for one
small transaction at a time, and a day's rollup blocks are rewritten once per step, not per hour.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from pulsewire.storage.blockcodec import (
    Rollup,
    decode_raw,
    decode_rollup,
    encode_raw,
    encode_rollup,
    merge_rollups,
    rollup_of,
)
from pulsewire.storage.layout import HOUR, MINUTE, RAW, Resolution

W = RAW.window_ms
STEP_VALUES = 5_000  # readings per transaction (an hour of 1 Hz readings): some 30-60 ms of work


@dataclass(slots=True)
class Step:
    windows: int = 0
    values: int = 0
    dropped: int = 0  # expired readings that arrived after their window's raw block was swept
    done: bool = False  # nothing closed is left in this series


def pending(conn: Connection) -> list[tuple[int, int]]:
    """(series id, oldest hot ts) of every series with hot rows, oldest first."""
    rows = conn.execute(
        text("SELECT id, (SELECT min(ts) FROM readings r WHERE r.series_id = s.id) AS oldest FROM series s")
    )
    return sorted(((sid, oldest) for sid, oldest in rows if oldest is not None), key=lambda r: r[1])


def compact_step(conn: Connection, series_id: int, before: int, raw_cutoff: int | None) -> Step:
    """Compact the series' oldest closed windows (ending at or before `before`) within one day, up to
    about STEP_VALUES readings: the day's rollup blocks are then read and written once per step."""
    if conn.dialect.name == "postgresql":  # `pulsewire db compact` and the server may run at once
        conn.execute(text("SELECT pg_advisory_xact_lock(2071, :sid)"), {"sid": series_id})
    oldest = conn.execute(
        text("SELECT min(ts) FROM readings WHERE series_id = :sid"), {"sid": series_id}
    ).scalar_one_or_none()
    if oldest is None or RAW.window_of(oldest) + W > before:
        return Step(done=True)
    lo = RAW.window_of(oldest)
    hi = min(MINUTE.window_of(lo) + MINUTE.window_ms, before - before % W)  # the day's closed windows
    cut = conn.execute(  # the STEP_VALUES-th reading from lo, if the span holds that many
        text("SELECT ts FROM readings WHERE series_id = :sid AND ts >= :lo ORDER BY ts LIMIT 1 OFFSET :n"),
        {"sid": series_id, "lo": lo, "n": STEP_VALUES},
    ).scalar_one_or_none()
    if cut is not None and cut < hi:
        hi = max(lo + W, RAW.window_of(cut))
    rows = _take(conn, series_id, lo, hi)
    if not rows:  # another compactor (the server's, or `pulsewire db compact`) took them first
        return Step()
    return _pack(conn, series_id, sorted(rows), raw_cutoff)


def _take(conn: Connection, series_id: int, lo: int, hi: int) -> list[tuple[Any, ...]]:
    """Delete the series' hot rows in [lo, hi) and return them, as plain tuples from the driver's own
    cursor (a day of readings through SQLAlchemy's rows cost a third of compaction's time)."""
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(_TAKE.format(m=mark), (series_id, lo, hi))
        return list(cur.fetchall())
    finally:
        cur.close()


_TAKE = "DELETE FROM readings WHERE series_id = {m} AND ts >= {m} AND ts < {m} RETURNING ts, value, is_bool"


def _pack(conn: Connection, series_id: int, rows: list[tuple[Any, ...]], raw_cutoff: int | None) -> Step:
    """Merge hot rows (sorted, within one day) into their windows' raw blocks and the day's rollups."""
    step = Step()
    day = MINUTE.window_of(rows[0][0])
    hours = _rollup(conn, series_id, HOUR, HOUR.window_of(day))
    packed: list[tuple[list[int], list[float]]] = []
    hot_ts = [row[0] for row in rows]
    i = 0
    while i < len(rows):
        window = RAW.window_of(hot_ts[i])
        j = bisect_left(hot_ts, window + W, i)
        taken, i = rows[i:j], j
        old = _block(conn, series_id, RAW, window)
        expired = raw_cutoff is not None and window + W <= raw_cutoff
        if expired and old is None and hours is not None and window in hours.start:
            # Its raw readings are gone and its buckets built from them: these cannot join exactly.
            step.dropped += len(taken)
            continue
        packed.append(_merge_window(conn, series_id, window, taken, old))
        step.windows += 1
        step.values += len(taken)
    if packed:
        stamps = [ts for s, _ in packed for ts in s]
        values = [x for _, vs in packed for x in vs]
        _put_rollup(conn, series_id, MINUTE, day, stamps, values, _rollup(conn, series_id, MINUTE, day))
        _put_rollup(conn, series_id, HOUR, HOUR.window_of(day), stamps, values, hours)
    return step


def _merge_window(
    conn: Connection, series_id: int, window: int, rows: list[tuple[Any, ...]], old: bytes | None
) -> tuple[list[int], list[float]]:
    """Write one window's block from its hot rows (sorted, one per ts) and its old block, whose values
    win; returns the window's readings."""
    if old is None:
        stamps, values, flags = (list(column) for column in zip(*rows, strict=True))
        flags = [bool(flag) for flag in flags]
    else:
        found = {ts: (value, bool(flag)) for ts, value, flag in rows}
        old_ts, old_values, old_flags = decode_raw(old)
        for i, ts in enumerate(old_ts):
            found[ts] = (old_values[i], bool(old_flags and old_flags[i]))  # the block's value was stored first
        stamps = sorted(found)
        values = [found[ts][0] for ts in stamps]
        flags = [found[ts][1] for ts in stamps]
    _put(conn, series_id, RAW, window, stamps[0], stamps[-1], len(stamps), encode_raw(stamps, values, flags))
    return stamps, values


def _put_rollup(
    conn: Connection,
    series_id: int,
    res: Resolution,
    start: int,
    stamps: list[int],
    values: list[float],
    have: Rollup | None,
) -> None:
    """Replace the rollup buckets these complete windows rebuild, in the block starting at `start`,
    which holds `have` (None: no block yet)."""
    new = rollup_of(stamps, values, res.bucket_ms)
    merged = new if have is None else merge_rollups(have, new)
    _put(conn, series_id, res, start, merged.start[0], merged.start[-1], len(merged.start), encode_rollup(merged))


def _block(conn: Connection, series_id: int, res: Resolution, start: int) -> bytes | None:
    data = conn.execute(
        text("SELECT data FROM blocks WHERE series_id = :sid AND res = :res AND start = :start"),
        {"sid": series_id, "res": res.code, "start": start},
    ).scalar_one_or_none()
    return None if data is None else bytes(data)


def _rollup(conn: Connection, series_id: int, res: Resolution, start: int) -> Rollup | None:
    data = _block(conn, series_id, res, start)
    return None if data is None else decode_rollup(data)


def _put(
    conn: Connection, series_id: int, res: Resolution, start: int, first: int, last: int, n: int, data: bytes
) -> None:
    conn.execute(
        text(
            "INSERT INTO blocks (series_id, res, start, first_ts, last_ts, n, size, data) "
            "VALUES (:sid, :res, :start, :first, :last, :n, :size, :data) ON CONFLICT (series_id, res, start) "
            "DO UPDATE SET first_ts = excluded.first_ts, last_ts = excluded.last_ts, n = excluded.n, "
            "size = excluded.size, data = excluded.data"
        ),
        {
            "sid": series_id,
            "res": res.code,
            "start": start,
            "first": first,
            "last": last,
            "n": n,
            "size": len(data),
            "data": data,
        },
    )
