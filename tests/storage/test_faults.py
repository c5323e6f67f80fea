"""Faults storage survives: `pulsewire db compact` killed (SIGKILL) in the middle of a write
transaction, on SQLite and PostgreSQL. Every reading stored before reads back exactly once with
its exact value, and the next run finishes the job."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text

from pulsewire.storage.layout import HOUR_MS, MINUTE_MS
from pulsewire.storage.queries import Agg, Point, TelemetryQuery
from tests.storage.history import AWKWARD, reference
from tests.storage.reading import read_points
from tests.support.cli import cli

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
