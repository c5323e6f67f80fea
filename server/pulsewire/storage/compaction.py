"""Compaction: each closed hour of a series moves from hot rows into one raw block, and its buckets
into the series' 1-minute and 1-hour rollups, in one transaction.

The rows are taken with DELETE ... RETURNING, so exactly the rows removed are the rows packed,
whatever else writes meanwhile. A window compacted before (late readings arrived since) is
merged with its block, the block's values first: a resend of a reading already packed stores
nothing new. Rollup buckets are rebuilt from the window's complete raw readings, so they are
never added to twice.

The functions run inside a transaction of the caller's: the server's writer (`upkeep.py`) or
`pulsewire db compact`. Each step compacts a bounded number of readings, so a writer running
them between group commits holds ingest up for one small transaction at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

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
from pulsewire.storage.layout import HOUR, RAW, ROLLUPS, Resolution

W = RAW.window_ms
STEP_VALUES = 20_000  # readings per transaction, about 10-20 ms of work


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
    """Compact the series' oldest closed windows (ending at or before `before`), up to STEP_VALUES readings."""
    step = Step()
    if conn.dialect.name == "postgresql":  # `pulsewire db compact` and the server may run at once
        conn.execute(text("SELECT pg_advisory_xact_lock(2071, :sid)"), {"sid": series_id})
    while step.values + step.dropped < STEP_VALUES:
        oldest = conn.execute(
            text("SELECT min(ts) FROM readings WHERE series_id = :sid"), {"sid": series_id}
        ).scalar_one_or_none()
        if oldest is None or RAW.window_of(oldest) + W > before:
            step.done = True
            break
        moved, dropped = compact_window(conn, series_id, RAW.window_of(oldest), raw_cutoff)
        step.windows += 1
        step.values += moved
        step.dropped += dropped
    return step


def compact_window(conn: Connection, series_id: int, window: int, raw_cutoff: int | None) -> tuple[int, int]:
    """Pack one window's hot rows into its block and rollups: (readings packed, readings dropped)."""
    rows = conn.execute(
        text("DELETE FROM readings WHERE series_id = :sid AND ts >= :lo AND ts < :hi RETURNING ts, value, is_bool"),
        {"sid": series_id, "lo": window, "hi": window + W},
    ).all()
    if not rows:
        return 0, 0
    old = _block(conn, series_id, RAW, window)
    hours = _rollup(conn, series_id, HOUR, HOUR.window_of(window))
    expired = raw_cutoff is not None and window + W <= raw_cutoff
    if expired and old is None and hours is not None and window in hours.start:
        # Its raw readings are gone and its buckets built from them: these cannot join exactly.
        return 0, len(rows)
    found = {ts: (value, bool(flag)) for ts, value, flag in rows}
    if old is not None:
        stamps, values, flags = decode_raw(old)
        for i, ts in enumerate(stamps):
            found[ts] = (values[i], bool(flags and flags[i]))  # the block's value was stored first
    stamps = sorted(found)
    values = [found[ts][0] for ts in stamps]
    flags = [found[ts][1] for ts in stamps]
    _put(conn, series_id, RAW, window, stamps[0], stamps[-1], len(stamps), encode_raw(stamps, values, flags))
    for res in ROLLUPS:
        start = res.window_of(window)
        have = hours if res is HOUR else _rollup(conn, series_id, res, start)
        new = rollup_of(stamps, values, res.bucket_ms)
        merged = new if have is None else merge_rollups(have, new)
        _put(conn, series_id, res, start, merged.start[0], merged.start[-1], len(merged.start), encode_rollup(merged))
    return len(rows), 0


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
            "INSERT INTO blocks (series_id, res, start, first_ts, last_ts, n, data) "
            "VALUES (:sid, :res, :start, :first, :last, :n, :data) ON CONFLICT (series_id, res, start) "
            "DO UPDATE SET first_ts = excluded.first_ts, last_ts = excluded.last_ts, n = excluded.n, data = excluded.data"
        ),
        {"sid": series_id, "res": res.code, "start": start, "first": first, "last": last, "n": n, "data": data},
    )
