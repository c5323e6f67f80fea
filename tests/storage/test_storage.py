"""Storage: the batching writer (group commit, idempotency, backpressure, failures) and migrations,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, select, text

from pulsewire.metrics import Metrics
from pulsewire.protocol import device as codec
from pulsewire.storage import devices as store
from pulsewire.storage.engine import head_revision, migrate, open_engine, schema_revision
from pulsewire.storage.queries import TelemetryQuery, series_ids
from pulsewire.storage.schema import metadata, readings
from pulsewire.storage.upkeep import compact_all
from pulsewire.storage.writer import Batch, BatchingWriter, DeviceRemoved, Extra, StorageError
from tests.storage.history import sync_runner
from tests.storage.reading import read_points
from tests.support.db import sqlite_write_lock
from tests.support.server import database_url_for


def telemetry(seq: int, start_ts: int, n: int, metric: str = "t") -> codec.Telemetry:
    return codec.Telemetry(seq, [{"ts": start_ts + i, "values": {metric: float(i)}} for i in range(n)])


def count_readings(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(readings)).scalar_one())


def make_writer(
    engine: Engine,
    *,
    queue_batches: int = 100,
    group_values: int = 10_000,
    on_commit: Callable[[list[Batch]], None] = lambda group: None,
    on_unstored: Callable[[list[Batch]], None] | None = None,
    shared: bool = False,
) -> BatchingWriter:
    return BatchingWriter(
        engine,
        Metrics(),
        queue_batches=queue_batches,
        group_values=group_values,
        on_commit=on_commit,
        on_unstored=on_unstored,
        shared=shared,
    )


async def busy_writer(writer: BatchingWriter, release: threading.Event) -> asyncio.Future[Any]:
    """Keep the writer's thread busy until `release` is set; returns once it is busy."""
    busy = threading.Event()

    def hold(conn: object) -> None:
        busy.set()
        release.wait(10)

    blocker = asyncio.ensure_future(writer.call(hold))
    assert await asyncio.to_thread(busy.wait, 5), "the writer never started the call"
    return blocker


async def submit(writer: BatchingWriter, device_id: str, msg: codec.Telemetry) -> asyncio.Future[None]:
    return await writer.submit(device_id, msg.data)


def test_group_commit_stores_each_reading_once_and_pushes_after_commit(engine: Engine) -> None:
    pushed: list[list[Batch]] = []

    async def scenario() -> None:
        metrics = Metrics()
        writer = BatchingWriter(engine, metrics, queue_batches=1000, group_values=10_000, on_commit=pushed.append)
        await writer.start()
        await writer.call(store.add_device("d1", "D1", "h1", 1))
        futures = [await submit(writer, "d1", telemetry(s, 1000 + s * 10, 10)) for s in range(1, 101)]
        futures.append(await submit(writer, "d1", telemetry(101, 1010, 10)))  # a replay of batch 1
        await asyncio.gather(*futures)
        await writer.stop()
        # Many batches shared a transaction: fewer commits than batches.
        groups = metrics.group_batches.collect()[0].samples
        count = next(s.value for s in groups if s.name.endswith("_count"))
        assert 1 <= count < 101

    asyncio.run(scenario())
    assert count_readings(engine) == 100 * 10  # 1000 distinct (series, ts); the replay added none
    assert sum(len(g) for g in pushed) == 101
    with engine.connect() as conn:
        latest = store.latest_values(conn, "d1")["d1"]["t"]
        assert (latest.ts, latest.value) == (1000 + 100 * 10 + 9, 9.0)
        assert store.get_device(conn, "d1").last_seen is not None  # type: ignore[union-attr]


def test_full_queue_makes_devices_wait_and_loses_nothing(engine: Engine) -> None:
    async def scenario() -> None:
        writer = make_writer(engine, queue_batches=2, group_values=5)
        await writer.start()
        await writer.call(store.add_device("d", "D", "h", 1))
        release = threading.Event()
        blocker = await busy_writer(writer, release)  # a slow disk
        await submit(writer, "d", telemetry(1, 0, 5))
        await submit(writer, "d", telemetry(2, 5, 5))
        third = asyncio.ensure_future(submit(writer, "d", telemetry(3, 10, 5)))
        done, _ = await asyncio.wait({third}, timeout=0.2)
        assert not done, "a full queue must make the submitter wait"
        release.set()
        done = await asyncio.wait_for(third, 5)
        await asyncio.wait_for(done, 5)
        await blocker
        await writer.stop()

    asyncio.run(scenario())
    assert count_readings(engine) == 15


def test_failed_commit_acks_nothing_and_keeps_what_was_stored(engine: Engine) -> None:
    async def scenario() -> None:
        pushed: list[list[Batch]] = []
        unstored: list[list[Batch]] = []
        writer = make_writer(engine, on_commit=pushed.append, on_unstored=unstored.append)
        await writer.start()
        await writer.call(store.add_device("d", "D", "h", 1))
        await (await submit(writer, "d", telemetry(1, 0, 5)))
        # The schema breaks under the writer (think: disk full, table locked by an operator).
        await writer.call(lambda conn: conn.execute(text("ALTER TABLE readings RENAME TO readings_away")))
        failing = await submit(writer, "d", telemetry(2, 100, 5))
        with pytest.raises(StorageError):
            await failing
        assert len(pushed) == 1  # nothing pushed live for the failed group...
        assert [[b.data[0]["ts"] for b in group] for group in unstored] == [[100]]  # ...it went to on_unstored
        await writer.call(lambda conn: conn.execute(text("ALTER TABLE readings_away RENAME TO readings")))
        await (await submit(writer, "d", telemetry(3, 100, 5)))  # the device's resend succeeds
        await writer.stop()

    asyncio.run(scenario())
    assert count_readings(engine) == 10


def rename(engine: Engine, table: str, to: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {table} RENAME TO {to}"))


def test_series_ids_of_a_failed_commit_are_not_reused(engine: Engine) -> None:
    async def scenario() -> None:
        writer = make_writer(engine)
        await writer.start()
        for dev in ("a", "b"):
            await writer.call(store.add_device(dev, dev, "h" + dev, 1))
        # Broken and mended from outside the writer (as a full disk would be), so no admin call
        # in between resets the writer's state.
        rename(engine, "readings", "readings_away")
        with pytest.raises(StorageError):
            await (await submit(writer, "a", telemetry(1, 1, 1, metric="m")))  # series a/m rolled back
        rename(engine, "readings_away", "readings")
        await (await submit(writer, "b", telemetry(1, 1, 1, metric="other")))  # may take the same id
        await (await submit(writer, "a", telemetry(2, 2, 1, metric="m")))
        await writer.stop()

    asyncio.run(scenario())
    with engine.connect() as conn:
        assert store.latest_values(conn, "a")["a"].keys() == {"m"}
        assert store.latest_values(conn, "b")["b"].keys() == {"other"}
        assert read_points(conn, series_ids(conn, "b")["other"], TelemetryQuery(0, 10, 10, "asc")) == [(1, 0.0)]


def test_batches_of_a_removed_device_are_refused_not_stored(engine: Engine) -> None:
    async def scenario() -> None:
        unstored: list[list[Batch]] = []
        writer = make_writer(engine, on_unstored=unstored.append)
        await writer.start()
        await writer.call(store.add_device("gone", "G", "hg", 1))
        await writer.call(store.add_device("kept", "K", "hk", 1))
        await (await submit(writer, "gone", telemetry(1, 0, 3)))
        release = threading.Event()
        blocker = await busy_writer(writer, release)
        removal = asyncio.ensure_future(writer.call(store.remove_device("gone", purge=True)))
        await asyncio.sleep(0)  # one turn: the removal is queued
        late = await submit(writer, "gone", telemetry(2, 10, 3))  # queued behind the purge
        kept = await submit(writer, "kept", telemetry(1, 10, 3))
        release.set()
        await blocker
        assert await removal == 3
        with pytest.raises(DeviceRemoved):
            await late
        await kept
        assert [[b.device_id for b in group] for group in unstored] == [["gone"]]  # not "kept"
        await writer.stop()

    asyncio.run(scenario())
    with engine.connect() as conn:
        assert series_ids(conn, "gone") == {}
    assert count_readings(engine) == 3


def test_devices_another_writer_adds_or_removes_are_seen_by_a_shared_writer(engine: Engine) -> None:
    """Instances of a cluster (and workers) on one database each have a writer (`shared`): a device
    registered through one of them is written by the others, whose cached device ids do not have
    it yet; one removed through another is refused as removed (its series are gone), never written
    against series that no longer exist."""

    async def scenario() -> None:
        first, second = make_writer(engine, shared=True), make_writer(engine, shared=True)
        await first.start()
        await second.start()
        await second.call(store.add_device("old", "O", "ho", 1))
        await (await submit(second, "old", telemetry(1, 0, 1)))  # second has cached the device and its series
        await first.call(store.add_device("new", "N", "hn", 1))
        await (await submit(second, "new", telemetry(1, 0, 3)))
        await first.call(store.remove_device("old", purge=True))
        with pytest.raises(DeviceRemoved):
            await (await submit(second, "old", telemetry(1, 10, 2)))
        await first.call(store.add_device("old", "O again", "ho2", 2))  # back under the same id: new series
        await (await submit(second, "old", telemetry(1, 20, 2)))
        await first.stop()
        await second.stop()

    asyncio.run(scenario())
    assert count_readings(engine) == 3 + 2


def test_admin_calls_report_their_own_errors(engine: Engine) -> None:
    async def scenario() -> None:
        writer = make_writer(engine, queue_batches=10, group_values=100)
        await writer.start()
        await writer.call(store.add_device("d1", "D1", "h1", 1))
        with pytest.raises(store.DeviceExists):
            await writer.call(store.add_device("d1", "D1 again", "h2", 2))
        with pytest.raises(store.DeviceNotFound):
            await writer.call(store.set_token("nope", "h3"))
        await (await submit(writer, "d1", telemetry(1, 0, 3)))
        assert await writer.call(store.remove_device("d1", purge=True)) == 3
        await writer.stop()
        with pytest.raises(StorageError):
            await writer.call(store.add_device("d2", "D2", "h4", 3))

    asyncio.run(scenario())
    assert count_readings(engine) == 0


def test_queries_raw_and_aggregated(engine: Engine) -> None:
    async def scenario() -> None:
        writer = make_writer(engine, queue_batches=10)
        await writer.start()
        await writer.call(store.add_device("q", "Q", "h", 1))
        await (await submit(writer, "q", telemetry(1, 0, 100)))
        await writer.stop()

    asyncio.run(scenario())
    with engine.connect() as conn:
        sid = series_ids(conn, "q")["t"]
        assert read_points(conn, sid, TelemetryQuery(10, 12, 10, "asc")) == [(10, 10.0), (11, 11.0), (12, 12.0)]
        buckets = read_points(conn, sid, TelemetryQuery(0, 99, 10, "desc", interval=25, agg="max"))
        assert buckets == [(75, 99.0), (50, 74.0), (25, 49.0), (0, 24.0)]


def test_migrations_match_the_tables_and_keep_readings(engine: Engine) -> None:
    assert schema_revision(engine) == head_revision() == "0006"
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO series (device_id, metric) VALUES ('m', 't')"))
        sid = conn.execute(text("SELECT id FROM series WHERE device_id = 'm'")).scalar_one()
        conn.execute(
            readings.insert(), [{"series_id": sid, "ts": i, "value": 1.0, "is_bool": False} for i in range(50)]
        )
    migrate(engine)  # a restart, or a newer release, upgrades in place
    assert count_readings(engine) == 50


def test_migration_0002_adds_the_device_interval_and_keeps_devices(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = database_url_for(backend, request) or f"sqlite:///{tmp_path / 'old.db'}"
    eng = open_engine(url)
    try:
        migrate(eng, "0001")  # a database of the release before per-device intervals
        with eng.begin() as conn:
            conn.execute(text("INSERT INTO devices (id, name, token_hash, created_at) VALUES ('old', 'Old', 'h', 1)"))
        migrate(eng, "0002")
        assert schema_revision(eng) == "0002"
        with eng.connect() as conn:
            assert store.interval_of(conn, "old") is None  # follows the server's default
            assert store.get_device(conn, "old") is not None

        async def scenario() -> None:
            writer = make_writer(eng, queue_batches=10, group_values=100)
            await writer.start()
            await writer.call(store.set_interval("old", 2500))
            with pytest.raises(store.DeviceNotFound):
                await writer.call(store.set_interval("gone", 2500))
            await writer.stop()

        asyncio.run(scenario())
        with eng.connect() as conn:
            assert store.interval_of(conn, "old") == 2500
            assert store.get_device(conn, "old").interval_ms == 2500  # type: ignore[union-attr]
    finally:
        eng.dispose()


def test_a_lock_held_by_another_process_does_not_stall_the_loop(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'locked.db'}")
    migrate(engine)

    async def scenario() -> None:
        writer = make_writer(engine, queue_batches=10, group_values=100)
        await writer.start()
        await writer.call(store.add_device("d", "D", "h", 1))
        with sqlite_write_lock(tmp_path / "locked.db"):
            done = await submit(writer, "d", telemetry(1, 0, 3))
            ticks = 0
            for _ in range(30):  # the loop keeps running while the group waits for the lock
                await asyncio.sleep(0.01)
                ticks += 1
            assert not done.done()
        await asyncio.wait_for(done, 10)
        assert ticks == 30
        await writer.stop()

    asyncio.run(scenario())
    assert count_readings(engine) == 3
    engine.dispose()


def test_values_and_latest_survive_the_write_path_bit_for_bit(engine: Engine) -> None:
    """The group goes to the database as one array per table: no double may change on the way."""
    tricky = [0.1, 0.30000000000000004, 1e-300, 5e-324, 1.7976931348623157e308, -2.2250738585072014e-308]
    tricky += [1.8446744073709552e19, 1844674407370955.2]  # misread by SQLite 3.47.0-3.47.1
    # (-0.0 is left out: SQLite stores a whole REAL as an integer, so it comes back as 0.0 on any path.)
    tricky += [123456789.12345679, 2.0**53, -(2.0**53), 1 / 3, 6.02214076e23, 2**53, -7, True, False]
    data = [{"ts": 1000 + i, "values": {"v": value}} for i, value in enumerate(tricky)]

    async def scenario() -> None:
        writer = make_writer(engine, queue_batches=10, group_values=100)
        await writer.start()
        await writer.call(store.add_device("exact", "E", "h-exact", 1))
        await (await writer.submit("exact", data))
        await writer.stop()

    asyncio.run(scenario())
    for packed in (False, True):  # as hot rows, then packed into a block by compaction
        if packed:
            asyncio.run(compact_all(sync_runner(engine), 10**12, None))
        with engine.connect() as conn:
            sid = series_ids(conn, "exact")["v"]
            stored = read_points(conn, sid, TelemetryQuery(0, 10**12, 100, "asc"))
            latest = store.latest_values(conn, "exact")["exact"]["v"]
            hot = conn.execute(text("SELECT count(*) FROM readings")).scalar_one()
        assert hot == (0 if packed else len(tricky))
        assert [ts for ts, _ in stored] == [1000 + i for i in range(len(tricky))]
        for (_, got), sent in zip(stored, tricky, strict=True):
            assert type(got) is (bool if type(sent) is bool else float), (got, sent)
            assert got == sent and str(float(got)) == str(float(sent)), (got, sent)
        assert (latest.ts, latest.value) == (1000 + len(tricky) - 1, False)


def test_an_sqlite_without_what_the_writer_needs_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from pulsewire.storage import writer

    writer.check_sqlite()  # this machine's SQLite is new enough and reads doubles back exactly
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    with pytest.raises(RuntimeError, match=r"SQLite 3\.31\.1, which this Python uses, is too old: SQLite 3\.35\.0"):
        writer.check_sqlite()
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 47, 1))
    # A double no text parser can give back stands in for a release that misreads one.
    monkeypatch.setattr(writer, "_PROBE_DOUBLES", [*writer._PROBE_DOUBLES, float("nan")])
    with pytest.raises(RuntimeError, match="does not read doubles back exactly"):
        writer.check_sqlite()


def test_what_a_group_adds_commits_with_it_and_its_failure_costs_no_reading(engine: Engine) -> None:
    """`before_commit`'s writes share the group's transaction; a mistake in them is rolled back
    alone (a savepoint), and the readings are stored and acked all the same."""
    committed: list[Any] = []

    def extra(group: list[Batch]) -> Extra:
        def write(conn: Any, removed: frozenset[str]) -> int:
            conn.execute(text("INSERT INTO devices (id, name, token_hash, created_at) VALUES ('x', 'X', 'hx', 1)"))
            if group[0].data[0]["values"]["t"] != 0.0:  # the second group's write breaks half-way
                raise ValueError("a mistake in the extra write")
            return len(group)

        return Extra(write, committed.append)

    async def scenario() -> None:
        writer = make_writer(engine)
        writer.before_commit = extra
        await writer.start()
        await writer.call(store.add_device("d1", "D1", "h1", 1))
        await (await submit(writer, "d1", telemetry(1, 1000, 5)))
        await writer.call(lambda conn: conn.execute(text("DELETE FROM devices WHERE id = 'x'")))
        second = codec.Telemetry(2, [{"ts": 2000, "values": {"t": 1.0}}])
        await (await submit(writer, "d1", second))  # acked although its extra write failed
        await writer.stop()

    asyncio.run(scenario())
    assert count_readings(engine) == 6
    assert committed == [1]  # only the first group's extra came through, and was told so
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM devices WHERE id = 'x'")).scalar_one() == 0


def test_a_prepared_call_sees_every_earlier_write_and_is_told_of_its_commit(engine: Engine) -> None:
    order: list[str] = []

    async def scenario() -> None:
        writer = make_writer(engine, on_commit=lambda group: order.append("group committed"))
        await writer.start()
        await writer.call(store.add_device("d1", "D1", "h1", 1))
        stored = await submit(writer, "d1", telemetry(1, 1000, 3))

        def prepare() -> Extra:
            order.append("prepared")
            return Extra(lambda conn, removed: count_in(conn), lambda n: order.append(f"committed {n}"))

        def count_in(conn: Any) -> int:
            return int(conn.execute(select(func.count()).select_from(readings)).scalar_one())

        assert await writer.call_prepared(prepare) == 3
        assert await writer.call_prepared(lambda: None) is None
        await stored
        await writer.stop()

    asyncio.run(scenario())
    assert order == ["group committed", "prepared", "committed 3"]
