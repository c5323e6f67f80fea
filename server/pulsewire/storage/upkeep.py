"""Keeping storage in shape while the server runs: compaction, then retention, in the background.

Every step is a small transaction handed to a runner: the server's writer (so there is still one
writer, and a step waits in its queue like any group commit), or, for `pulsewire db compact`, a
transaction of its own beside a running server (SQLite's lock and PostgreSQL's advisory lock
keep the two apart).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, text

from pulsewire.clock import now_ms
from pulsewire.metrics import Metrics
from pulsewire.storage.compaction import compact_step, pending
from pulsewire.storage.layout import RAW
from pulsewire.storage.retention import SWEEP_BATCH, Retention, sweep_some
from pulsewire.storage.stats import resolution_bytes

log = logging.getLogger("pulsewire.upkeep")

T = TypeVar("T")
Runner = Callable[[Callable[[Connection], T]], Awaitable[T]]

# A window is packed this long after it closes, so readings a board buffered through a short
# outage join it before it is packed rather than after (which costs a merge).
COMPACT_DELAY_MS = 5 * 60_000
PASS_SECONDS = 30.0  # between passes
SWEEP_SECONDS = 600.0  # between retention sweeps


@dataclass(slots=True)
class Compacted:
    windows: int = 0
    values: int = 0
    dropped: int = 0
    seconds: float = 0.0
    lag_ms: int = 0  # how long ago the oldest window this pass found waiting had closed


async def compact_all(run: Runner[Any], before: int, raw_cutoff: int | None) -> Compacted:
    """Compact every window that closed at or before `before`, series by series, a step at a time."""
    began = time.perf_counter()
    out = Compacted()
    todo = await run(pending)
    if todo:
        oldest = todo[0][1]
        out.lag_ms = max(0, before - (RAW.window_of(oldest) + RAW.window_ms))
    for series_id, oldest in todo:
        if RAW.window_of(oldest) + RAW.window_ms > before:
            continue
        while True:
            step = await run(partial(compact_step, series_id=series_id, before=before, raw_cutoff=raw_cutoff))
            out.windows += step.windows
            out.values += step.values
            out.dropped += step.dropped
            if step.done:
                break
    out.seconds = time.perf_counter() - began
    return out


async def sweep_all(run: Runner[Any], retention: Retention, now: int) -> dict[str, int]:
    """Remove every block past its resolution's retention: blocks removed per resolution."""
    swept: dict[str, int] = {}
    for res, cutoff in retention.cutoffs(now).items():
        swept[res.name] = 0
        while cutoff is not None:
            gone = await run(partial(sweep_some, res=res, cutoff=cutoff))
            swept[res.name] += gone
            if gone < SWEEP_BATCH:
                break
    return swept


FREE_BYTES_KEPT = 2 * 1024 * 1024  # left free for the hot table's next rows
RELEASE_BYTES = 32 * 1024 * 1024  # given back per transaction


def release_some(conn: Connection) -> int:
    """SQLite with incremental auto-vacuum: give free pages back to the file system, up to
    RELEASE_BYTES of them, keeping FREE_BYTES_KEPT for what comes next; how many pages went (0:
    nothing to do, or a file made without auto-vacuum, which reuses its free pages instead)."""
    if conn.dialect.name != "sqlite" or conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one() != 2:
        return 0
    page = int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
    free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one())
    surplus = min(RELEASE_BYTES // page, free - FREE_BYTES_KEPT // page)
    if surplus <= 0:
        return 0
    # The pragma frees one page per step, and Python's sqlite3 steps a statement without result
    # columns once; executescript steps it to the end (committing what this transaction did so far:
    # nothing, as it is the only statement that writes).
    conn.connection.driver_connection.executescript(f"PRAGMA incremental_vacuum({surplus});")  # type: ignore[union-attr]
    return surplus


async def give_back(run: Runner[Any], engine: Engine) -> None:
    """Let the space that compaction and retention freed be used again, or returned.

    SQLite: free pages beyond a small reserve go back to the file system (a file with incremental
    auto-vacuum), a batch per transaction, and a checkpoint then cuts the file and its WAL down.
    PostgreSQL: a plain VACUUM (no lock that stops writes) makes the space of deleted rows and
    blocks reusable, so tables do not grow into bloat."""
    while await run(release_some) > 0:
        pass
    await asyncio.to_thread(_tidy, engine)


def _tidy(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("VACUUM (ANALYZE) readings, blocks"))
        else:  # PASSIVE: never waits, so never holds the writer up; what it cannot copy waits for the next
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


@dataclass(eq=False)
class Upkeep:
    """The background task: a compaction pass every PASS_SECONDS, a sweep every SWEEP_SECONDS."""

    run: Runner[Any]
    engine: Engine
    retention: Retention
    metrics: Metrics
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _sized: bool = field(default=False, init=False)  # stored_bytes set at least once

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="pulsewire-upkeep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        next_sweep = 0.0
        while True:
            sweep = time.monotonic() >= next_sweep
            try:
                await self.once(sweep=sweep)
                if sweep:
                    next_sweep = time.monotonic() + SWEEP_SECONDS
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next pass tries again; ingest goes on either way
                self.metrics.upkeep_errors.inc()
                log.error("storage upkeep failed", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
            await asyncio.sleep(PASS_SECONDS)

    async def once(self, *, sweep: bool) -> None:
        """One compaction pass (and a sweep), with the metrics they update."""
        now = now_ms()
        done = await compact_all(self.run, now - COMPACT_DELAY_MS, self.retention.oldest_accepted(now))
        m = self.metrics
        m.compaction_lag.set(done.lag_ms / 1000)
        m.compacted_values.inc(done.values)
        m.expired_values.inc(done.dropped)
        if done.windows:
            log.info(
                "compacted", extra={"windows": done.windows, "values": done.values, "seconds": round(done.seconds, 3)}
            )
        if sweep:
            swept = await sweep_all(self.run, self.retention, now)
            for name, count in swept.items():
                m.swept_blocks.labels(resolution=name).inc(count)
        if sweep or done.values or not self._sized:
            await give_back(self.run, self.engine)
            for name, size in (await asyncio.to_thread(self._sizes)).items():
                m.stored_bytes.labels(resolution=name).set(size)
            self._sized = True

    def _sizes(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return resolution_bytes(conn)
