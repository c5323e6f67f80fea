"""A stored history in every state storage can be in, and the plain reference reads are held to.

Three series over a day boundary: some hours compacted into blocks (with their rollups), later
ones still hot, late readings sitting hot in compacted hours, and resends of packed readings
with other values (which must not count: the first value stored is kept).
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, text

from pulsewire.storage.layout import DAY_MS, HOUR_MS
from pulsewire.storage.queries import Point, TelemetryQuery
from pulsewire.storage.upkeep import compact_all

T = TypeVar("T")
DAY = 20_000 * DAY_MS  # a midnight (UTC)
START, END = DAY - 2 * HOUR_MS, DAY + 2 * HOUR_MS
COMPACTED_BEFORE = DAY + HOUR_MS  # hours ending by then are packed

AWKWARD = [0.1, 0.30000000000000004, 1e-300, 5e-324, 1.7976931348623157e308, 1 / 3, 2.0**53, -7.0, 6.02214076e23]


def _series(rng: random.Random) -> dict[int, list[tuple[int, float, bool]]]:
    ones = [(START + 1000 * i + rng.randrange(20), round(21 + rng.gauss(0, 2), 2), False) for i in range(4 * 3600)]
    sparse = sorted({rng.randrange(START, END): 0 for _ in range(400)})
    odd = [(ts, rng.choice(AWKWARD) * rng.choice((1, -1)), False) for ts in sparse]
    flags = [(START + 7_000 * i, float(i % 3 == 0), True) for i in range(4 * 3600 // 7)]
    return {1: ones, 2: odd, 3: flags}


def _insert(conn: Connection, rows: list[tuple[int, int, float, bool]]) -> None:
    conn.execute(
        text("INSERT INTO readings (series_id, ts, value, is_bool) VALUES (:s, :t, :v, :b)"),
        [{"s": s, "t": t, "v": v, "b": b} for s, t, v, b in rows],
    )


def sync_runner(engine: Engine) -> Callable[[Callable[[Connection], T]], Any]:
    async def run(fn: Callable[[Connection], T]) -> T:
        with engine.begin() as conn:
            return fn(conn)

    return run


def build(engine: Engine, seed: int = 7) -> dict[int, dict[int, tuple[float, bool]]]:
    """Store the history; returns the truth: series id -> ts -> (value, is_bool)."""
    rng = random.Random(seed)
    series = _series(rng)
    late = {
        sid: [r for i, r in enumerate(rows) if i % 10 == 3 and r[0] < COMPACTED_BEFORE] for sid, rows in series.items()
    }
    with engine.begin() as conn:
        for sid in series:
            conn.execute(
                text("INSERT INTO series (id, device_id, metric) VALUES (:id, 'hist', :m)"), {"id": sid, "m": f"m{sid}"}
            )
        _insert(conn, [(sid, *r) for sid, rows in series.items() for r in rows if r not in late[sid]])
    asyncio.run(compact_all(sync_runner(engine), COMPACTED_BEFORE, None))
    resent = [
        (sid, t, v + 1, b) for sid, rows in series.items() for t, v, b in rows[::50] if (t, v, b) not in late[sid]
    ]
    with engine.begin() as conn:
        _insert(conn, [(sid, *r) for sid, rows in late.items() for r in rows])  # late: hot in packed hours
        _insert(conn, [r for r in resent if r[1] < COMPACTED_BEFORE - HOUR_MS])  # resends of packed readings
    return {sid: {t: (v, b) for t, v, b in rows} for sid, rows in series.items()}


def reference(truth: dict[int, tuple[float, bool]], q: TelemetryQuery) -> list[Point]:
    """What a query must answer, computed the plain way from every reading."""
    picked = sorted((ts, vb) for ts, vb in truth.items() if q.start <= ts <= q.end)
    if q.interval is None:
        rows = [(ts, bool(v) if b else v) for ts, (v, b) in picked]
        return (rows[::-1] if q.order == "desc" else rows)[: q.limit]
    buckets: dict[int, list[float]] = defaultdict(list)
    for ts, (v, _) in picked:
        buckets[ts - ts % q.interval].append(v)
    keys = sorted(buckets, reverse=q.order == "desc")[: q.limit]
    return [(key, *(_agg(buckets[key], agg) for agg in q.aggs)) for key in keys]


def _agg(values: list[float], agg: str) -> float | int:
    if agg in ("count", "min", "max"):
        return {"count": len, "min": min, "max": max}[agg](values)  # type: ignore[operator, no-any-return]
    exact = sum(Fraction(Decimal(repr(v))) for v in values)  # each value as the decimal it was sent as
    if agg == "avg":
        exact /= len(values)
    try:
        return float(exact)
    except OverflowError:
        return float("inf") if exact > 0 else float("-inf")
