"""The storage record (pulsewire/storage/health.py): causes from the drivers' own errors, the wait
clients are told, and a failing cause logged once per interval."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from pulsewire.metrics import Metrics
from pulsewire.storage.health import (
    BUSY,
    DISK_FULL,
    FAILED,
    UNREACHABLE,
    RetryPolicy,
    StorageError,
    StorageHealth,
    cause_of,
    close_reason,
    is_storage_error,
)
from tests.support.server import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sqlite_error(sql: str, tmp_path: Path) -> DBAPIError:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.begin() as conn, pytest.raises(DBAPIError) as raised:
            conn.execute(text(sql))
        return raised.value
    finally:
        engine.dispose()


def test_a_database_nobody_listens_on_is_unreachable() -> None:
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x")
    with pytest.raises(OperationalError) as raised:
        engine.connect()
    assert is_storage_error(raised.value) and cause_of(raised.value) == UNREACHABLE
    with pytest.raises(psycopg.OperationalError) as direct:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{free_port()}/x", connect_timeout=3)
    assert is_storage_error(direct.value) and cause_of(direct.value) == UNREACHABLE


def test_sqlite_errors_are_storage_errors_with_their_cause(tmp_path: Path) -> None:
    missing_table = sqlite_error("SELECT * FROM nowhere", tmp_path)
    assert is_storage_error(missing_table) and cause_of(missing_table) == FAILED
    full = sqlite3.OperationalError("database or disk is full")  # what SQLite says (tests/storage/test_outages.py)
    assert is_storage_error(full) and cause_of(full) == DISK_FULL
    assert cause_of(sqlite3.OperationalError("database is locked")) == BUSY
    assert cause_of(OSError(28, "No space left on device")) == DISK_FULL


def test_a_refused_statement_is_a_bug_not_an_outage(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "x.db") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    duplicate = sqlite_error("INSERT INTO t VALUES (1), (1)", tmp_path)
    assert not is_storage_error(duplicate)
    assert not is_storage_error(ValueError("a bug"))


def test_the_wait_starts_at_the_first_step_grows_with_the_outage_and_stays_bounded() -> None:
    policy = RetryPolicy(first_s=10, max_s=120)
    assert [policy.hint_s(0, d) for d in (0, 0.5, 0.999)] == [5, 8, 10]  # half the step to the step
    assert [policy.hint_s(40, d) for d in (0, 0.999)] == [20, 40]  # the step is the outage so far
    assert [policy.hint_s(10_000, d) for d in (0, 0.999)] == [60, 120]  # never past max_s
    assert RetryPolicy(first_s=0.1, max_s=0.5).hint_s(0, 0) == 1  # whole seconds, at least one
    assert close_reason(7) == "storage unavailable; retry in 7 s"


def test_a_fleet_is_told_different_waits() -> None:
    health = StorageHealth(Metrics())
    health.failed(StorageError("x", UNREACHABLE), "commit")
    assert len({health.retry_after_s() for _ in range(200)}) >= 4


def test_failures_until_a_success_and_a_read_cannot_end_a_full_disk() -> None:
    clock, metrics = Clock(), Metrics()
    health = StorageHealth(metrics, RetryPolicy(10, 120), clock=clock)
    assert health.ready and health.report() == {"ready": True, "last_commit_ms": None}
    health.failed(StorageError("x", DISK_FULL), "commit")
    clock.now += 30
    health.failed(StorageError("y", DISK_FULL), "commit")
    assert not health.ready and health.failures == 2 and health.outage_s() == 30
    assert health.report()["cause"] == DISK_FULL and health.report()["failing_for_s"] == 30
    clock.now += 5
    health.succeeded(read_only=True)  # a probe's SELECT worked: says nothing of the disk
    assert not health.ready and health.quiet_for() == 0
    health.succeeded()
    assert health.ready and health.failures == 0 and health.last_success_ms is not None
    health.failed(StorageError("z", UNREACHABLE), "probe")
    health.succeeded(read_only=True)  # the database answers again
    assert health.ready
    assert metrics.storage_failures.labels(cause=DISK_FULL)._value.get() == 2


def test_an_error_the_writer_recorded_is_not_counted_again_by_its_caller() -> None:
    health = StorageHealth(Metrics())
    error = sqlite3.OperationalError("database or disk is full")
    assert health.failed(error, "write") == health.failed(error, "request") == DISK_FULL
    assert health.failures == 1


def test_a_failing_cause_is_logged_once_per_minute(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    health = StorageHealth(Metrics(), clock=clock)
    with caplog.at_level(logging.INFO, logger="pulsewire.storage"):
        for _ in range(500):
            health.failed(StorageError("x", UNREACHABLE), "commit")
        health.failed(StorageError("x", DISK_FULL), "commit")
        clock.now += 61
        health.failed(StorageError("x", UNREACHABLE), "commit")
        health.succeeded()
    events = [(r.getMessage(), getattr(r, "cause", None), getattr(r, "held_back", None)) for r in caplog.records]
    assert events == [
        ("storage unavailable", UNREACHABLE, None),
        ("storage unavailable", DISK_FULL, None),
        ("storage unavailable", UNREACHABLE, 499),
        ("storage available again", None, None),
    ]
    assert not any(r.exc_info for r in caplog.records)
