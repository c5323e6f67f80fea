"""Compaction and retention through the server's one writer, on SQLite and PostgreSQL: nothing
acked is lost or doubled, a resend after packing stores nothing, reads see every reading once."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from sqlalchemy import Engine, text

from pulsewire.metrics import Metrics
from pulsewire.storage import devices as store
from pulsewire.storage.layout import DAY_MS, HOUR_MS, MINUTE_MS
from pulsewire.storage.queries import TelemetryQuery, read_series, series_ids
from pulsewire.storage.retention import Retention
from pulsewire.storage.stats import storage_stats
from pulsewire.storage.upkeep import Upkeep, compact_all, give_back, sweep_all
from pulsewire.storage.writer import BatchingWriter
from tests.storage.history import sync_runner
from tests.storage.reading import ALL_KEPT, read_points

DAY = 20_100 * DAY_MS
ALL = TelemetryQuery(0, 2**53 - 1, 100_000, "asc")


def readings(start: int, n: int, step: int = 1000, offset: float = 0.0) -> list[dict[str, object]]:
    return [
        {"ts": start + i * step, "values": {"t": round(20 + (i % 97) * 0.01 + offset, 2), "on": i % 2 == 0}}
        for i in range(n)
    ]


def make_writer(engine: Engine) -> BatchingWriter:
    return BatchingWriter(engine, Metrics(), queue_batches=100, group_values=5000, on_commit=lambda group: None)


def count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def points(engine: Engine, metric: str, q: TelemetryQuery = ALL) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return read_points(conn, series_ids(conn, "c")[metric], q)


def test_compaction_beside_ingest_loses_and_doubles_nothing(engine: Engine) -> None:
    async def scenario() -> None:
        writer = make_writer(engine)
        await writer.start()
        await writer.call(store.add_device("c", "C", "h", 1))
        await (await writer.submit("c", readings(DAY, 3 * 3600)))  # three closed hours
        acks = [await writer.submit("c", readings(DAY + 3 * HOUR_MS + i * 500_000, 500, offset=0.5)) for i in range(8)]
        done = await compact_all(writer.upkeep_call, DAY + 3 * HOUR_MS, None)
        await asyncio.gather(*acks)
        await writer.stop()
        assert (done.windows, done.values) == (6, 2 * 3 * 3600)  # 3 hours x 2 metrics

    asyncio.run(scenario())
    assert count(engine, "SELECT count(*) FROM blocks WHERE res = 0") == 6
    assert count(engine, "SELECT count(*) FROM readings") == 2 * 4000  # the open hour stays hot
    got = points(engine, "t")
    assert len(got) == 3 * 3600 + 4000 and got[:2] == [(DAY, 20.0), (DAY + 1000, 20.01)]
    assert {type(v) for _, v in points(engine, "on")} == {bool}


def test_a_resend_after_packing_stores_nothing_and_keeps_the_first_value(engine: Engine) -> None:
    async def scenario() -> None:
        writer = make_writer(engine)
        await writer.start()
        await writer.call(store.add_device("c", "C", "h", 1))
        await (await writer.submit("c", readings(DAY, 3600)))
        await compact_all(writer.upkeep_call, DAY + HOUR_MS, None)
        await (await writer.submit("c", readings(DAY, 100, offset=5)))  # the same stamps, other values
        await (await writer.submit("c", readings(DAY + 500, 10)))  # late, new stamps in the packed hour
        assert points(engine, "t")[:3] == [(DAY, 20.0), (DAY + 500, 20.0), (DAY + 1000, 20.01)]
        await compact_all(writer.upkeep_call, DAY + HOUR_MS, None)
        await writer.stop()

    asyncio.run(scenario())
    assert count(engine, "SELECT count(*) FROM readings") == 0
    assert (
        count(engine, "SELECT n FROM blocks WHERE res = 0 AND series_id = (SELECT id FROM series WHERE metric = 't')")
        == 3610
    )
    got = points(engine, "t")
    assert len(got) == 3610 and got[:3] == [(DAY, 20.0), (DAY + 500, 20.0), (DAY + 1000, 20.01)]
    q = TelemetryQuery(DAY, DAY + HOUR_MS - 1, 10, "asc", MINUTE_MS, ("count", "max"))
    assert points(engine, "t", q)[0] == (DAY, 70, 20.59)  # rollups rebuilt once, from the merged hour


def test_a_read_during_compaction_sees_every_reading_once(engine: Engine) -> None:
    n = 6 * 3600
    seen: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.append(len(points(engine, "t")))
            bucketed = points(engine, "t", TelemetryQuery(DAY, DAY + 6 * HOUR_MS, 100, "asc", HOUR_MS, "count"))
            seen.append(sum(int(c) for _, c in bucketed))  # type: ignore[call-overload]

    async def scenario() -> None:
        writer = make_writer(engine)
        await writer.start()
        await writer.call(store.add_device("c", "C", "h", 1))
        await (await writer.submit("c", readings(DAY, n)))
        thread = threading.Thread(target=reader)
        thread.start()
        try:
            await compact_all(writer.upkeep_call, DAY + 6 * HOUR_MS, None)
        finally:
            stop.set()
            await asyncio.to_thread(thread.join)
        await writer.stop()

    asyncio.run(scenario())
    assert len(seen) >= 2 and set(seen) == {n}


def test_retention_removes_whole_blocks_and_rollups_answer_for_expired_hours(engine: Engine) -> None:
    old, now = DAY - 40 * DAY_MS, DAY
    retention = Retention(raw_days=30, minute_days=35, hour_days=None)

    async def scenario() -> None:
        writer = make_writer(engine)
        await writer.start()
        await writer.call(store.add_device("c", "C", "h", 1))
        await (await writer.submit("c", readings(old, 2 * 3600)))
        await (await writer.submit("c", readings(now - HOUR_MS, 3600)))
        await compact_all(writer.upkeep_call, now, None)
        swept = await sweep_all(writer.upkeep_call, retention, now)
        assert swept == {"raw": 4, "1m": 2, "1h": 0}  # two metrics: 2 raw hours and 1 minute-day each
        await writer.stop()

    asyncio.run(scenario())
    assert points(engine, "t")[0][0] == now - HOUR_MS  # the old raw hours are gone
    q = TelemetryQuery(old - 5, now, 100, "asc", DAY_MS, "count")
    with engine.connect() as conn:
        answer = read_series(conn, series_ids(conn, "c")["t"], q, retention.floors(now))
    # Days are whole 1-hour buckets; the 5 ms before `old` would need raw readings, long gone.
    assert answer.points == [(old, 7200), (now - DAY_MS, 3600)]
    assert answer.served == ("1h",) and not answer.exact


def test_upkeep_pass_updates_its_metrics_and_stats_tell_the_layout(engine: Engine, tmp_path: Path) -> None:
    metrics = Metrics()

    async def scenario() -> None:
        writer = make_writer(engine)
        await writer.start()
        await writer.call(store.add_device("c", "C", "h", 1))
        await (await writer.submit("c", readings(DAY, 7200)))
        upkeep = Upkeep(writer.upkeep_call, engine, Retention(None, None, None), metrics)
        await upkeep.once(sweep=True)
        await writer.stop()

    asyncio.run(scenario())
    text_metrics = metrics.render().decode()
    assert "pulsewire_compacted_values_total 14400.0" in text_metrics
    assert 'pulsewire_swept_blocks_total{resolution="raw"} 0.0' in text_metrics
    with engine.connect() as conn:
        stats = storage_stats(conn, Path(engine.url.database or "") if engine.dialect.name == "sqlite" else None)
    raw = stats["resolutions"]["raw"]
    assert (raw["values"], raw["hot_values"], raw["blocks"]) == (14400, 0, 4)
    assert (raw["oldest"], raw["newest"]) == (DAY, DAY + 7199 * 1000)
    assert stats["resolutions"]["1m"]["buckets"] == 2 * 120 and stats["resolutions"]["1h"]["buckets"] == 4
    assert stats["bytes_on_disk"] > 0 and stats["stored_values"] == 14400


def test_purging_a_device_removes_its_blocks(engine: Engine) -> None:
    async def scenario() -> int:
        writer = make_writer(engine)
        await writer.start()
        await writer.call(store.add_device("c", "C", "h", 1))
        await (await writer.submit("c", readings(DAY, 3700)))
        await compact_all(writer.upkeep_call, DAY + HOUR_MS, None)
        purged = await writer.call(store.remove_device("c", purge=True))
        await writer.stop()
        return purged

    assert asyncio.run(scenario()) == 2 * 3700
    assert count(engine, "SELECT count(*) FROM blocks") == count(engine, "SELECT count(*) FROM readings") == 0


def test_late_readings_for_an_hour_whose_raw_block_expired_are_dropped_not_added_twice(engine: Engine) -> None:
    old = DAY - 40 * DAY_MS
    retention = Retention(raw_days=30, minute_days=None, hour_days=None)
    run = sync_runner(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO series (id, device_id, metric) VALUES (1, 'x', 't')"))
        conn.execute(
            text("INSERT INTO readings VALUES (1, :t, 1.5, false), (1, :u, 2.5, false)"), {"t": old, "u": old + 1}
        )
    asyncio.run(compact_all(run, DAY, None))
    asyncio.run(sweep_all(run, retention, DAY))
    with engine.begin() as conn:  # the same reading again, as a resend long after
        conn.execute(text("INSERT INTO readings VALUES (1, :t, 1.5, false)"), {"t": old})
    done = asyncio.run(compact_all(run, DAY, retention.oldest_accepted(DAY)))
    assert (done.values, done.dropped) == (0, 1)
    q = TelemetryQuery(old, old + HOUR_MS - 1, 10, "asc", HOUR_MS, "count")
    with engine.connect() as conn:
        assert read_series(conn, 1, q, ALL_KEPT).points == [(old, 2)]


def _table_bytes(engine: Engine) -> int:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            sql = "SELECT pg_total_relation_size('blocks') + pg_total_relation_size('readings')"
        else:
            sql = "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
        return int(conn.execute(text(sql)).scalar_one())


def test_space_of_swept_blocks_and_packed_rows_is_reused_not_grown(engine: Engine) -> None:
    """Fill, pack and expire the same volume again and again: the tables stop growing after the first
    round (PostgreSQL: plain VACUUM after each sweep; SQLite: its free pages), so nothing is left for
    VACUUM FULL."""
    run, retention = sync_runner(engine), Retention(raw_days=30, minute_days=30, hour_days=30)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO series (id, device_id, metric) VALUES (1, 'x', 't'), (2, 'x', 'u')"))
    sizes = []
    for round_ in range(4):
        old = DAY - 40 * DAY_MS + round_ * 3 * HOUR_MS
        rows = [
            {"s": s, "t": old + 1000 * i, "v": round(20 + (i % 89) * 0.01, 2)} for s in (1, 2) for i in range(3 * 3600)
        ]
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO readings VALUES (:s, :t, :v, false)"), rows)
        assert asyncio.run(compact_all(run, DAY, None)).values == len(rows)
        swept = asyncio.run(sweep_all(run, retention, DAY))
        assert (swept["raw"], swept["1m"]) == (6, 2)  # 3 hours x 2 series; each series' one minute-day
        asyncio.run(give_back(run, engine))
        sizes.append(_table_bytes(engine))
    assert sizes[3] <= sizes[1] * 1.1, sizes
