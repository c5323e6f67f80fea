"""A database made by the release before compact storage (schema 0002, readings in rows) is upgraded
in place: every reading kept and readable, then packed by compaction like new ones. One made before
alerts (0003) gains the empty alert tables and loses them again on a downgrade."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text

from pulsewire.storage.engine import _alembic_config, migrate, open_engine, schema_revision
from pulsewire.storage.layout import HOUR_MS, MINUTE_MS
from pulsewire.storage.queries import TelemetryQuery
from pulsewire.storage.upkeep import compact_all
from tests.storage.history import sync_runner
from tests.storage.reading import read_points
from tests.support.server import database_url_for

NOW = int(time.time() * 1000) // HOUR_MS * HOUR_MS
OLD = [(NOW - 3 * HOUR_MS + 1000 * i, round(15 + (i % 50) * 0.1, 1)) for i in range(3 * 3600)]


def old_release_database(url: str) -> None:
    """What the release before made: schema 0002, its readings one row each."""
    eng = open_engine(url)
    migrate(eng, "0002")
    with eng.begin() as conn:
        conn.execute(text("INSERT INTO devices (id, name, token_hash, created_at) VALUES ('old', 'Old', 'h', 1)"))
        conn.execute(text("INSERT INTO series (id, device_id, metric) VALUES (1, 'old', 't')"))
        conn.execute(
            text("INSERT INTO readings (series_id, ts, value, is_bool) VALUES (1, :t, :v, false)"),
            [{"t": t, "v": v} for t, v in OLD],
        )
    eng.dispose()


def test_an_old_database_is_upgraded_in_place_and_keeps_every_reading(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = database_url_for(backend, request) or f"sqlite:///{tmp_path / 'old.db'}"
    old_release_database(url)
    eng = open_engine(url)
    try:
        copy = migrate(eng)
        assert schema_revision(eng) == "0006"
        everything = TelemetryQuery(0, 2**53 - 1, 100_000, "asc")
        minutes = TelemetryQuery(NOW - 3 * HOUR_MS, NOW, 1000, "asc", MINUTE_MS, ("count", "avg"))
        with eng.connect() as conn:
            assert read_points(conn, 1, everything) == OLD  # readable at once, before any compaction
            before = read_points(conn, 1, minutes)
        done = asyncio.run(compact_all(sync_runner(eng), NOW, None))
        assert (done.windows, done.values) == (3, len(OLD))
        with eng.connect() as conn:
            assert read_points(conn, 1, everything) == OLD
            assert read_points(conn, 1, minutes) == before
            assert conn.execute(text("SELECT count(*) FROM readings")).scalar_one() == 0
    finally:
        eng.dispose()
    if backend == "sqlite":  # the release before's file was copied first, whole
        assert copy is not None and copy.name.startswith("old.db.rev0002-")
        with sqlite3.connect(copy) as kept:
            assert kept.execute("SELECT version_num FROM alembic_version").fetchone() == ("0002",)
            assert kept.execute("SELECT count(*) FROM readings").fetchone() == (len(OLD),)
    else:
        assert copy is None


ALERT_TABLES = {"alert_rules", "alert_channels", "alert_states", "alerts", "alert_notifications"}


def test_a_database_before_alerts_gains_empty_alert_tables_and_keeps_its_devices(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = database_url_for(backend, request) or f"sqlite:///{tmp_path / 'before-alerts.db'}"
    eng = open_engine(url)
    try:
        migrate(eng, "0003")
        with eng.begin() as conn:
            conn.execute(text("INSERT INTO devices (id, name, token_hash, created_at) VALUES ('d', 'D', 'h', 1)"))
        assert "alert_rules" not in inspect(eng).get_table_names()
        migrate(eng)
        assert schema_revision(eng) == "0006"
        with eng.begin() as conn:
            assert conn.execute(text("SELECT id FROM devices")).scalars().all() == ["d"]
            for table in sorted(ALERT_TABLES):
                assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
            conn.execute(text("INSERT INTO alert_rules (id, body, created_ms, updated_ms) VALUES ('r', '{}', 1, 1)"))
            command.downgrade(_alembic_config(conn), "0003")
        assert schema_revision(eng) == "0003"
        assert not ALERT_TABLES & set(inspect(eng).get_table_names())
    finally:
        eng.dispose()
