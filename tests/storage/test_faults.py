"""Faults storage survives: `pulsewire db compact` and `pulsewire db sweep` killed (SIGKILL) in the
middle of a write transaction, on SQLite and PostgreSQL; the disk filling up while compaction and
ingest write; a server killed while devices send and a compaction runs beside it. Every reading
stored (or acked) before reads back exactly once with its exact value, and the next run finishes
the job."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from websockets.exceptions import ConnectionClosed

from pulsewire.storage import devices as store
from pulsewire.storage.engine import migrate, open_engine
from pulsewire.storage.layout import DAY_MS, HOUR, HOUR_MS, MINUTE, MINUTE_MS
from pulsewire.storage.queries import Agg, Point, TelemetryQuery, series_ids
from pulsewire.storage.upkeep import compact_all
from pulsewire.storage.writer import BatchingWriter, StorageError
from tests.storage.history import AWKWARD, reference, sync_runner
from tests.storage.reading import read_points
from tests.storage.test_compaction import make_writer
from tests.support.cli import cli
from tests.support.clients import device, send_batch
from tests.support.env import missing
from tests.support.server import Server, start_server

Truth = dict[int, dict[int, tuple[float, bool]]]  # series id -> ts -> (value, is_bool)
Answers = dict[str, dict[int, list[Point]]]  # query name -> series id -> points
AGGS: tuple[Agg, ...] = ("count", "min", "max")


def _now() -> int:
    return time.time_ns() // 1_000_000


def _value(sid: int, i: int) -> tuple[float, bool]:
    """Decimals as boards send them, doubles no decimal holds exactly, and booleans."""
    if sid % 6 == 0:
        return float(i % 3 == 0), True
    if sid % 6 == 5:
        return AWKWARD[(sid + i) % len(AWKWARD)] * (-1) ** i, False
    return (2000 + (sid * 31 + i) % 997) / 100, False


def _points(sid: int, start: int, hours: int, step: int) -> dict[int, tuple[float, bool]]:
    return {start + i * step: _value(sid, i) for i in range(hours * HOUR_MS // step)}


def _load(engine: Engine, truth: Truth) -> None:
    """Series and their readings as hot rows, in bulk (COPY on PostgreSQL)."""
    series = [(sid, f"m{sid}") for sid in truth]
    rows = [(sid, ts, v, b) for sid, points in truth.items() for ts, (v, b) in points.items()]
    raw = engine.raw_connection()
    try:
        cur: Any = raw.cursor()
        if engine.dialect.name == "postgresql":
            cur.executemany("INSERT INTO series (id, device_id, metric) VALUES (%s, 'f', %s)", series)
            with cur.copy("COPY readings (series_id, ts, value, is_bool) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cur.executemany("INSERT INTO series (id, device_id, metric) VALUES (?, 'f', ?)", series)
            cur.executemany("INSERT INTO readings (series_id, ts, value, is_bool) VALUES (?, ?, ?, ?)", rows)
        raw.commit()
    finally:
        raw.close()


def _count(engine: Engine, sql: str, **params: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def _queries(start: int, end: int) -> dict[str, TelemetryQuery]:
    return {
        "raw": TelemetryQuery(start, end, 10**7, "asc"),
        "minutes": TelemetryQuery(start, end, 10**7, "asc", MINUTE_MS, AGGS),
        "hours": TelemetryQuery(start, end, 10**7, "asc", HOUR_MS, AGGS),
    }


def _expected(truth: Truth, queries: dict[str, TelemetryQuery]) -> Answers:
    return {name: {sid: reference(points, q) for sid, points in truth.items()} for name, q in queries.items()}


def _stored(engine: Engine, sids: list[int], queries: dict[str, TelemetryQuery]) -> Answers:
    with engine.connect() as conn:
        return {name: {sid: read_points(conn, sid, q) for sid in sids} for name, q in queries.items()}


def _intact(engine: Engine) -> None:
    """SQLite: the file passes its integrity check (after recovering the WAL a killed writer left)."""
    if engine.dialect.name == "sqlite":
        with sqlite3.connect(engine.url.database or "") as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def _writing(engine: Engine) -> bool:
    """Is another connection inside a write transaction right now?"""
    if engine.dialect.name == "postgresql":
        sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
        )
        return _count(engine, sql) > 0
    probe = sqlite3.connect(engine.url.database or "", timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:  # "database is locked": the writer is at work
        assert "locked" in str(exc)
        return True
    finally:
        probe.close()


def _pulsewire(engine: Engine, *args: str) -> subprocess.Popen[str]:
    """`pulsewire ARGS --database-url <the engine's>` started in the background."""
    url = engine.url.render_as_string(hide_password=False)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PULSEWIRE_")}
    command = [sys.executable, "-m", "pulsewire", *args, "--database-url", url]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean)


def _kill_mid_run(proc: subprocess.Popen[str], engine: Engine, begun: Callable[[], bool]) -> None:
    """SIGKILL `proc` once `begun()` holds and it is inside a write transaction (checked just before)."""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"it finished (exit {proc.returncode}) before it could be killed:\n{out}{err}")
            if begun() and _writing(engine):
                proc.send_signal(signal.SIGKILL)
                assert proc.wait(10) == -signal.SIGKILL
                return
            time.sleep(0.002)
        raise AssertionError("it never got under way")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _cli_json(engine: Engine, *args: str) -> dict[str, Any]:
    url = engine.url.render_as_string(hide_password=False)
    done = cli(*args, "--json", "--database-url", url)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_a_compaction_killed_midway_loses_and_doubles_nothing_and_the_next_one_finishes(engine: Engine) -> None:
    hours, sids = 3, range(1, 17)
    start = _now() // HOUR_MS * HOUR_MS - hours * HOUR_MS  # closed hours, well inside raw retention
    truth = {sid: _points(sid, start, hours, 1000) for sid in sids}
    _load(engine, truth)
    queries = _queries(start, start + hours * HOUR_MS - 1)
    want = _expected(truth, queries)
    raw_blocks, windows = "SELECT count(*) FROM blocks WHERE res = 0", len(sids) * hours

    _kill_mid_run(_pulsewire(engine, "db", "compact"), engine, lambda: _count(engine, raw_blocks) >= windows // 2)
    _intact(engine)
    packed, hot = _count(engine, raw_blocks), _count(engine, "SELECT count(*) FROM readings")
    assert windows // 2 <= packed < windows and hot > 0  # killed mid-run: some hours packed, some not
    assert _stored(engine, list(sids), queries) == want

    done = _cli_json(engine, "db", "compact")
    assert (done["values"], done["dropped"]) == (hot, 0)
    assert _count(engine, "SELECT count(*) FROM readings") == 0
    assert _count(engine, raw_blocks) == windows
    assert _stored(engine, list(sids), queries) == want


def _replicate(engine: Engine, last: int) -> None:
    """Series 2..last, each holding a copy of every block of series 1."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < :last) "
                "INSERT INTO series (id, device_id, metric) SELECT i, 'f', 'm' || i FROM n"
            ),
            {"last": last},
        )
        conn.execute(
            text(
                "INSERT INTO blocks (series_id, res, start, first_ts, last_ts, n, size, data) "
                "SELECT s.id, b.res, b.start, b.first_ts, b.last_ts, b.n, b.size, b.data "
                "FROM blocks b JOIN series s ON s.id <> b.series_id WHERE b.series_id = 1"
            )
        )


def test_a_sweep_killed_midway_keeps_what_is_kept_and_the_next_one_finishes(engine: Engine) -> None:
    now, last = _now(), 500
    old = (now - 32 * DAY_MS) // DAY_MS * DAY_MS  # two days whose raw hours expire (30 days are kept)
    kept = (now - 28 * DAY_MS) // DAY_MS * DAY_MS  # and six hours that do not
    truth = {1: {**_points(1, old, 48, MINUTE_MS), **_points(1, kept, 6, MINUTE_MS)}}
    _load(engine, truth)
    asyncio.run(compact_all(sync_runner(engine), now, None))  # retention off: every hour packed
    _replicate(engine, last)
    expired_sql = "SELECT count(*) FROM blocks WHERE res = 0 AND start < :kept"
    expired = _count(engine, expired_sql, kept=kept)
    kept_blocks = _count(engine, "SELECT count(*) FROM blocks WHERE res > 0 OR start >= :kept", kept=kept)
    rollups = len({MINUTE.window_of(ts) for ts in truth[1]}) + len({HOUR.window_of(ts) for ts in truth[1]})
    assert (expired, kept_blocks) == (last * 48, last * (6 + rollups))
    same_as_first = (
        "SELECT count(*) FROM blocks b JOIN blocks t ON t.series_id = 1 AND t.res = b.res AND t.start = b.start "
        "AND t.data = b.data WHERE b.res > 0 OR b.start >= :kept"
    )
    sample = [1, last // 2, last]
    whole = _queries(old, kept + 6 * HOUR_MS - 1)
    queries = {"raw": _queries(kept, whole["raw"].end)["raw"], "minutes": whole["minutes"], "hours": whole["hours"]}
    want = _expected({sid: truth[1] for sid in sample}, queries)
    sweep = ("db", "sweep", "--retention-raw-days", "30")

    _kill_mid_run(_pulsewire(engine, *sweep), engine, lambda: _count(engine, expired_sql, kept=kept) < expired)
    _intact(engine)
    left = _count(engine, expired_sql, kept=kept)
    assert 0 < left < expired  # killed mid-run
    assert _count(engine, same_as_first, kept=kept) == kept_blocks  # every block still kept is there, unchanged
    assert _stored(engine, sample, queries) == want  # the kept raw hours, and the rollups of every hour

    assert _cli_json(engine, *sweep) == {"raw": left, "1m": 0, "1h": 0}
    assert _count(engine, expired_sql, kept=kept) == 0
    assert _count(engine, same_as_first, kept=kept) == kept_blocks
    assert _stored(engine, sample, queries) == want
    assert _stored(engine, sample, {"all": whole["raw"]})["all"] == want["raw"]  # no expired raw reading is left


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real filesystem of its own (an 8 MiB tmpfs) for a test to fill up."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(disk)], capture_output=True, text=True
        )
        problem = mounted.stderr.strip() if mounted.returncode else None
    except FileNotFoundError:
        problem = "there is no mount command"
    if problem:
        missing(f"cannot mount a small filesystem to fill up: {problem}", "run the tests as root, as CI does")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=True)


def _fill(disk: Path, leave: int) -> Path:
    """A file taking all the free space of `disk` but `leave` bytes."""
    filler = disk / "filler"
    free = os.statvfs(disk)
    with open(filler, "wb", buffering=0) as f:
        f.write(bytes(free.f_bavail * free.f_frsize - leave))
    return filler


METRICS = {f"m{k}": k for k in range(1, 7)}


def _readings(start: int, n: int, step: int = 1000) -> list[dict[str, Any]]:
    """`n` readings `step` ms apart, of six metrics: decimals, awkward doubles and booleans."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        ts = start + i * step
        values = {metric: _value(k, ts // step) for metric, k in METRICS.items()}
        out.append({"ts": ts, "values": {m: bool(v) if b else v for m, (v, b) in values.items()}})
    return out


def _truth_of(batches: list[list[dict[str, Any]]], ids: dict[str, int]) -> Truth:
    truth: Truth = {sid: {} for sid in ids.values()}
    for data in batches:
        for reading in data:
            for metric, v in reading["values"].items():
                truth[ids[metric]][reading["ts"]] = (float(v), type(v) is bool)
    return truth


async def _ingest_until_refused(
    writer: BatchingWriter, start: int, acked: list[list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Batches in the open hour until a group commit fails; the refused batch."""
    for j in range(100):
        data = _readings(start + j * 300_000, 300)
        try:
            await (await writer.submit("c", data))
        except StorageError:
            return data
        acked.append(data)
    raise AssertionError("the disk never filled up")


def test_a_full_disk_fails_compaction_and_ingest_cleanly_and_both_resume_when_space_returns(small_disk: Path) -> None:
    engine = open_engine(f"sqlite:///{small_disk / 'pulsewire.db'}")
    migrate(engine)
    day, closed = 20_100 * DAY_MS, 20_100 * DAY_MS + 3 * HOUR_MS
    acked = [_readings(day, 3 * 3600)]  # three closed hours of six series

    def reads() -> tuple[Answers, Answers]:
        with engine.connect() as conn:
            ids = series_ids(conn, "c")
        queries = _queries(day, day + 24 * HOUR_MS)
        return _stored(engine, sorted(ids.values()), queries), _expected(_truth_of(acked, ids), queries)

    async def scenario() -> None:
        writer = make_writer(engine)
        await writer.start()
        try:
            await writer.call(store.add_device("c", "C", "h", 1))
            await (await writer.submit("c", acked[0]))
            with engine.connect() as conn:  # the WAL emptied: every commit from here on needs new space
                assert conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()[0] == 0
            filler = _fill(small_disk, leave=384 * 1024)  # room for a step or so of compaction
            with pytest.raises(OperationalError, match="database or disk is full"):
                await compact_all(writer.upkeep_call, closed, None)
            refused = await _ingest_until_refused(writer, closed, acked)
            stored, want = reads()
            assert stored == want  # readable: every acked reading once, nothing of the refused batch
            filler.unlink()  # space returns
            await (await writer.submit("c", refused))  # the device's resend is acked
            acked.append(refused)
            await compact_all(writer.upkeep_call, closed, None)
        finally:
            await writer.stop()

    try:
        asyncio.run(scenario())
        _intact(engine)
        assert _count(engine, "SELECT count(*) FROM readings WHERE ts < :closed", closed=closed) == 0
        assert _count(engine, "SELECT count(*) FROM blocks WHERE res = 0") == 3 * len(METRICS)
        stored, want = reads()
        assert stored == want
    finally:
        engine.dispose()


async def _send(server: Server, token: str, batches: Iterable[list[dict[str, Any]]], acked: list[Any]) -> None:
    """Send the batches one after another, each once the one before is acked, until the server goes away."""
    try:
        async with device(server, token) as ws:
            for seq, data in enumerate(batches, start=1):
                answer = await send_batch(ws, seq, data)
                assert answer["type"] == "ack", answer
                acked.append(data)
    except (ConnectionClosed, OSError):
        pass


def _hour_batches(start: int, size: int) -> list[list[dict[str, Any]]]:
    """The hour from `start`, a reading a second, `size` readings a batch (a divisor of 3600)."""
    assert 3600 % size == 0
    return [_readings(start + i * 1000, size) for i in range(0, 3600, size)]


def _late(start: int) -> Iterator[list[dict[str, Any]]]:
    """Late readings into the hour from `start`, a millisecond apart, 50 a batch, for as long as asked."""
    return (_readings(start + i, 50, step=1) for i in range(0, HOUR_MS, 50))


def test_a_server_killed_while_devices_send_and_a_compaction_runs_keeps_every_acked_reading(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = start_server(tmp_path, "sqlite", request)
    devices = ["k1", "k2"]
    pairs = list(zip(devices, server.register_many(devices), strict=True))
    start = _now() // HOUR_MS * HOUR_MS - 3 * HOUR_MS  # three closed hours
    acked: dict[str, list[Any]] = {dev: [] for dev in devices}
    engine = open_engine(f"sqlite:///{tmp_path / 'pulsewire.db'}")

    async def scenario() -> None:
        loaded = _hour_batches(start, 240) + _hour_batches(start + HOUR_MS, 240)
        await asyncio.gather(*(_send(server, token, loaded, acked[dev]) for dev, token in pairs))
        assert all(len(done) == len(loaded) for done in acked.values())
        late = start + 2 * HOUR_MS  # sent while compaction runs, into an hour it packs
        senders = [asyncio.create_task(_send(server, t, _late(late), acked[d])) for d, t in pairs]
        compact = _pulsewire(engine, "db", "compact")
        while await asyncio.to_thread(_count, engine, "SELECT count(*) FROM blocks WHERE res = 0") < 6:
            assert compact.poll() is None, compact.communicate()
            await asyncio.sleep(0.01)
        assert compact.poll() is None and not all(t.done() for t in senders)
        os.kill(server.pid, signal.SIGKILL)  # mid-ingest and mid-compaction
        await asyncio.gather(*senders)
        await asyncio.to_thread(again.start)  # while the compaction goes on
        out, err = await asyncio.to_thread(compact.communicate)
        assert compact.returncode == 0, err

    again = Server(tmp_path, admin_key=server.admin_key, port=server.port)
    request.addfinalizer(again.stop)
    try:
        asyncio.run(scenario())
    finally:
        engine.dispose()
    for dev in devices:
        got = again.telemetry(dev, start=start, end=start + 3 * HOUR_MS - 1, limit=100_000, order="asc")
        assert set(got) == set(METRICS)
        for metric, points in got.items():
            stored = {p["ts"]: (type(p["value"]), p["value"]) for p in points}
            assert len(stored) == len(points)  # each reading once
            sent = {r["ts"]: (type(r["values"][metric]), r["values"][metric]) for batch in acked[dev] for r in batch}
            assert {ts: stored.get(ts) for ts in sent} == sent  # every acked reading, with its exact value
