"""The single write path: a batching writer with group commit.

Device handlers hand over validated batches and get a future back. One task gathers every batch
that is waiting (up to `group_values` values) into one transaction, written and committed on a
dedicated thread, and only after the commit calls `on_commit` (the live push, when it waits for
commits) and resolves the futures (acks). Batches that were not stored (a failed group, a removed
device) go to `on_unstored` instead. Under load the groups grow, so the cost of a commit is
shared by many batches.

Each table gets one statement per group, its rows passed as one parameter (a JSON array for
SQLite, arrays for PostgreSQL). The driver releases the GIL for the whole statement, so the
database works on the other core while the event loop goes on reading frames. With a statement
per row (`executemany`), the thread took the GIL back after every row, each time waiting up to a
switch interval behind the busy loop.

The queue is bounded: when the disk is slower than the network, `submit` waits, the device
handler stops reading its socket, and TCP pushes back on the devices.

Other writes (device registration, rotation, removal) go through `call`, in their own transaction
on the same thread, so there is exactly one writer. The alerts a group's readings set off are
written in the group's own transaction (`before_commit`), so they commit with the readings or
not at all.

Every outcome goes to `health` (storage/health.py), which readiness and the 503 answers read. A
server nobody writes to learns of an outage from `check_storage`, a probe run when asked and
only when nothing has been committed for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, Engine, bindparam, case, func, select, text, update

from pulsewire.clock import now_ms
from pulsewire.metrics import Metrics
from pulsewire.storage.health import NOT_ANSWERING, WRITER_STOPPED, StorageError, StorageHealth, is_storage_error
from pulsewire.storage.schema import devices

log = logging.getLogger("pulsewire.writer")

T = TypeVar("T")

# UPDATE ... FROM (3.33) and the JSON functions, which pass a whole group in one statement;
# DELETE ... RETURNING (3.35), with which compaction takes exactly the rows it packs.
MIN_SQLITE = (3, 35, 0)


# Doubles that SQLite's text-to-double conversion has got wrong in some releases (3.47.0-3.47.1
# misread 16-digit prefixes 1844674407370955...), and the extremes.
_PROBE_DOUBLES = [1.8446744073709552e19, 1844674407370955.2, 0.1, 5e-324, 2.2250738585072014e-308]
_PROBE_DOUBLES += [1.7976931348623157e308, 123456789.12345679, 1 / 3]


def check_sqlite() -> None:
    """Refuse to start on an SQLite library that lacks what the write path needs or misreads doubles."""
    need = ".".join(map(str, MIN_SQLITE))
    problem = None
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        problem = "is too old"
    else:
        with contextlib.closing(sqlite3.connect(":memory:")) as db:
            try:
                # The shape the writer uses: each row an array, read with json_extract.
                rows = orjson.dumps([[v] for v in _PROBE_DOUBLES])
                back = db.execute("SELECT json_extract(value, '$[0]') FROM json_each(?)", (rows,)).fetchall()
            except sqlite3.OperationalError:
                problem = "has no JSON functions"
            else:
                if [v for (v,) in back] != _PROBE_DOUBLES:
                    problem = "does not read doubles back exactly"
    if problem:
        raise RuntimeError(
            f"SQLite {sqlite3.sqlite_version}, which this Python uses, {problem}: SQLite {need} or newer with "
            "the JSON functions is needed. Use a newer Python or system SQLite, or PostgreSQL."
        )


def value_rows(data: list[dict[str, Any]]) -> list[tuple[str, int, float, bool]]:
    """Flatten validated readings into (metric, ts, value, is_bool) rows, one per value."""
    out = []
    for reading in data:
        ts = reading["ts"]
        for name, value in reading["values"].items():
            out.append((name, ts, float(value), type(value) is bool))
    return out


__all__ = ["Batch", "BatchingWriter", "DeviceRemoved", "StorageError", "Touch", "check_sqlite", "value_rows"]


class DeviceRemoved(StorageError):
    """The batch's device was removed before the batch reached the database; it is not stored."""


@dataclass(slots=True)
class Batch:
    device_id: str
    data: list[dict[str, Any]]  # validated readings (ts and values), handed to `on_commit` after the commit
    rows: list[tuple[str, int, float, bool]]  # (metric, ts, value, is_bool)
    done: asyncio.Future[None] = field(repr=False)

    @property
    def metrics(self) -> set[str]:
        return {metric for metric, *_ in self.rows}


@dataclass(slots=True)
class Touch:
    """The device was heard from: last_seen (and, from a hello, its firmware version)."""

    device_id: str
    seen: int
    fw: str | None = None


@dataclass(frozen=True, slots=True)
class Extra:
    """More to write in a group's transaction (alerts/runtime.py: the alerts its readings move)."""

    write: Callable[..., Any] | None  # write(conn, removed=<devices removed>), on the writer thread; None: nothing
    committed: Callable[[Any], None]  # on the loop, with what `write` returned, once committed


# Called on the loop with each group just before its transaction; what it returns is written in it.
BeforeCommit = Callable[[list["Batch"]], Extra | None]


@dataclass(slots=True)
class _Call:
    fn: Callable[[Connection], Any] | None
    done: asyncio.Future[Any] = field(repr=False)
    prepare: Callable[[], Extra | None] | None = None
    devices_unchanged: bool = False  # the writer's cached device and series ids stay valid
    read_only: bool = False  # a probe: its success cannot end an outage only a write shows


_STOP = object()

OnCommit = Callable[[list[Batch]], None]


class BatchingWriter:
    def __init__(
        self,
        engine: Engine,
        metrics: Metrics,
        *,
        queue_batches: int,
        group_values: int,
        on_commit: OnCommit,
        on_unstored: OnCommit | None = None,
        health: StorageHealth | None = None,
        before_commit: BeforeCommit | None = None,
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._group_values = group_values
        self._on_commit = on_commit
        self._on_unstored = on_unstored
        self.before_commit = before_commit  # set once, before start (the alerts need the writer first)
        self.health = health or StorageHealth(metrics)
        self._probe: asyncio.Future[Any] | None = None
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_batches)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pulsewire-writer")
        self._task: asyncio.Task[None] | None = None
        self._carry: Any = None
        # device id -> metric -> series id. Used only by the writer task: on the loop, or on the
        # thread while the task waits for it, never both at once.
        self._series_ids: dict[str, dict[str, int]] = {}
        # Every registered device id. Devices change only through `call`, which resets this, so
        # a group checks that its devices still exist without a query.
        self._device_ids: set[str] | None = None
        self._conn: Connection | None = None  # the writer's own connection, open while running
        self._store_rows = _store_rows_postgres if engine.dialect.name == "postgresql" else _store_rows_sqlite
        metrics.write_queue_depth.set_function(self._queue.qsize)

    async def start(self) -> None:
        self._conn = self._engine.connect()
        self._task = asyncio.create_task(self._run(), name="pulsewire-writer")

    async def stop(self) -> None:
        """Commit everything already queued, then stop."""
        if self._task is None:
            return
        await self._queue.put(_STOP)
        await self._task
        self._task = None
        self._thread.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def submit(self, device_id: str, data: list[dict[str, Any]]) -> asyncio.Future[None]:
        """Queue a batch of validated readings; waits while the queue is full. The future resolves after the commit."""
        self._check_running()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put(Batch(device_id, data, value_rows(data), done))
        return done

    async def touch(self, device_id: str, seen: int, fw: str | None = None) -> None:
        """Record contact with a device in the next group commit (no transaction of its own)."""
        self._check_running()
        await self._queue.put(Touch(device_id, seen, fw))

    async def call(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn(connection)` in its own transaction on the writer thread and return its result."""
        return await self._call(_Call(fn, asyncio.get_running_loop().create_future()))

    async def call_prepared(self, prepare: Callable[[], Extra | None]) -> Any:
        """`call` for a change that depends on every earlier write (the alerts' clock, rule edits):
        `prepare` runs on the loop when the writer gets to it, after everything queued before has
        committed, and returns what to write (or None: nothing to do). Its `committed` runs before
        the writer goes on; returns what `write` returned."""
        return await self._call(_Call(None, asyncio.get_running_loop().create_future(), prepare=prepare))

    async def upkeep_call(self, fn: Callable[[Connection], T]) -> T:
        """`call` for compaction and retention, which never add or remove devices or series."""
        return await self._call(_Call(fn, asyncio.get_running_loop().create_future(), devices_unchanged=True))

    async def _call(self, call: _Call) -> Any:
        self._check_running()
        await self._queue.put(call)
        return await call.done

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _check_running(self) -> None:
        if not self.running:
            raise StorageError("the writer is not running", WRITER_STOPPED)

    async def check_storage(self, quiet_s: float, timeout_s: float) -> None:
        """Probe the database when nothing was committed for `quiet_s` seconds; waits at most `timeout_s`.

        The probe (a SELECT on the writer thread, behind whatever is queued) records its outcome in
        `health`. Callers at the same moment share one probe. A probe that does not finish in time
        says the writer is stuck; its outcome, when it comes, is recorded too.
        """
        if not self.running or self.health.quiet_for() < quiet_s:
            return
        if self._probe is None or self._probe.done():
            probe = _Call(_probe, asyncio.get_running_loop().create_future(), devices_unchanged=True, read_only=True)
            self._probe = asyncio.ensure_future(self._call(probe))
            self._probe.add_done_callback(_consume_probe)
        try:
            await asyncio.wait_for(asyncio.shield(self._probe), timeout_s)
        except TimeoutError:
            self.health.failed(StorageError("probe timed out", NOT_ANSWERING), "probe")
        except Exception:  # recorded by the writer task
            pass

    async def _next(self) -> Any:
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        return await self._queue.get()

    async def _run(self) -> None:
        while True:
            item = await self._next()
            if item is _STOP:
                return
            if isinstance(item, _Call):
                await self._run_call(item)
                continue
            group: list[Batch] = []
            touches: list[Touch] = []
            values = 0
            while True:
                if isinstance(item, Batch):
                    group.append(item)
                    values += len(item.rows)
                else:
                    touches.append(item)
                if values >= self._group_values or self._queue.empty():
                    break
                item = self._queue.get_nowait()
                if not isinstance(item, (Batch, Touch)):
                    self._carry = item
                    break
            await self._commit(group, touches, values)

    async def _run_call(self, item: _Call) -> None:
        loop = asyncio.get_running_loop()
        extra = None
        if item.prepare is not None:
            try:
                extra = item.prepare()
            except Exception as exc:  # the caller's own mistake, not storage's
                item.done.set_exception(exc)
                return
            if extra is None:
                item.done.set_result(None)
                return
            assert extra.write is not None, "a prepared call writes something"
            item.fn = partial(extra.write, removed=frozenset())
        try:
            result = await loop.run_in_executor(self._thread, self._call_in_thread, item)
        except Exception as exc:  # handed to the caller, who decides what it means
            if is_storage_error(exc):
                self.health.failed(exc, "probe" if item.read_only else "write")
            if not item.done.done():
                item.done.set_exception(exc)
        else:
            self.health.succeeded(read_only=item.read_only)
            if extra is not None:
                try:
                    extra.committed(result)
                except Exception as exc:
                    log.exception("handling a prepared write's commit failed")
                    item.done.set_exception(exc)
                    return
            if not item.done.done():
                item.done.set_result(result)

    def _call_in_thread(self, call: _Call) -> Any:
        assert call.fn is not None
        if call.read_only:  # a probe: of the connection commits use, which it revives if it had broken
            return self._on_own_connection(call.fn)
        try:
            with self._engine.begin() as conn:
                return call.fn(conn)
        finally:
            # A call may add or remove devices and purge series: forget what is cached.
            if not call.devices_unchanged:
                self._series_ids.clear()
                self._device_ids = None

    def _on_own_connection(self, fn: Callable[[Connection], T]) -> T:
        conn = self._conn
        assert conn is not None
        try:
            conn.begin()
            result = fn(conn)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return result

    async def _commit(self, group: list[Batch], touches: list[Touch], values: int) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        extra = self._extra(group)
        try:
            rows = _Rows.build(group, self._series_ids)
            removed, extra_result = await loop.run_in_executor(
                self._thread, self._write_and_commit, group, touches, rows, extra
            )
        except Exception as exc:
            # Ids cached during the failed transaction were rolled back.
            self._series_ids.clear()
            self._device_ids = None
            self._metrics.storage_errors.inc()
            cause = self.health.failed(exc, "commit")  # logged once per cause per interval
            failure = StorageError(f"storage failed: {cause}", cause)
            self._unstored(group)
            for batch in group:
                if not batch.done.done():
                    batch.done.set_exception(failure)
            return
        if removed:
            gone = DeviceRemoved("device removed")
            self._unstored([b for b in group if b.device_id in removed])
            for batch in group:
                if batch.device_id in removed:
                    batch.done.set_exception(gone)
            group = [b for b in group if b.device_id not in removed]
            values = sum(len(b.rows) for b in group)
        self.health.succeeded()
        m = self._metrics
        m.commit_seconds.observe(time.perf_counter() - started)
        m.group_batches.observe(len(group))
        m.readings.inc(sum(len(b.data) for b in group))
        m.values.inc(values)
        try:
            self._on_commit(group)
        except Exception:  # live push must never cost an ack
            log.exception("live push after commit failed")
        if extra is not None and extra_result is not _NO_EXTRA:
            try:
                extra.committed(extra_result)
            except Exception:  # nor may what follows from the alerts
                log.exception("handling the alerts of a commit failed")
        for batch in group:
            if not batch.done.done():
                batch.done.set_result(None)

    def _extra(self, group: list[Batch]) -> Extra | None:
        if self.before_commit is None or not group:
            return None
        try:
            return self.before_commit(group)
        except Exception:  # evaluation must never cost a commit or an ack
            log.exception("evaluating the alerts of a group failed")
            return None

    def _unstored(self, batches: list[Batch]) -> None:
        if self._on_unstored is not None:
            try:
                self._on_unstored(batches)
            except Exception:
                log.exception("handling batches that were not stored failed")

    def _write_and_commit(
        self, group: list[Batch], touches: list[Touch], rows: _Rows | None, extra: Extra | None
    ) -> tuple[set[str], Any]:
        """Write the group in one transaction on the writer's connection and commit it.

        Returns the devices that no longer exist (their batches not written) and what `extra`
        returned (the alerts written with the group). `rows` were built
        on the loop from cached series ids; None when a series is new (or a device was removed),
        and then they are built here once the series exist.
        """
        conn = self._conn
        assert conn is not None
        try:
            conn.begin()
            # A removal (and purge) ran before this group, so a late batch never undoes it.
            wanted = {b.device_id for b in group}
            # A device missing from the cache may have been added by another writer on the same
            # database (serve --workers): read the ids again before calling it removed.
            if self._device_ids is None or not wanted <= self._device_ids:
                self._device_ids = set(conn.execute(select(devices.c.id)).scalars())
            present = wanted & self._device_ids
            removed = wanted - present
            if removed:
                group = [b for b in group if b.device_id not in removed]
                rows = None
            if group:
                if rows is None:
                    self._resolve_series(conn, group)
                    rows = _Rows.build(group, self._series_ids)
                    assert rows is not None
                cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                try:
                    self._store_rows(cur, rows, present, now_ms())
                finally:
                    cur.close()
            if touches:
                conn.execute(
                    update(devices)
                    .where(devices.c.id == bindparam("d"))
                    .values(
                        last_seen=case(
                            (devices.c.last_seen > bindparam("seen"), devices.c.last_seen), else_=bindparam("seen")
                        ),
                        fw=func.coalesce(bindparam("fw"), devices.c.fw),
                    ),
                    [{"d": t.device_id, "seen": t.seen, "fw": t.fw} for t in touches],
                )
            extra_result = _write_extra(conn, extra, frozenset(removed)) if extra is not None else _NO_EXTRA
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return removed, extra_result

    def _resolve_series(self, conn: Connection, group: list[Batch]) -> None:
        ids = self._series_ids
        missing = {
            (b.device_id, metric) for b in group for metric in b.metrics if metric not in ids.get(b.device_id, ())
        }
        if not missing:
            return
        params = [{"d": d, "m": m} for d, m in missing]
        conn.execute(text("INSERT INTO series (device_id, metric) VALUES (:d, :m) ON CONFLICT DO NOTHING"), params)
        found = conn.execute(
            text("SELECT device_id, metric, id FROM series WHERE device_id IN :devices").bindparams(
                bindparam("devices", expanding=True)
            ),
            {"devices": sorted({d for d, _ in missing})},
        )
        for device_id, metric, sid in found:
            ids.setdefault(device_id, {})[metric] = sid


_NO_EXTRA = object()  # nothing more was written with the group


def _write_extra(conn: Connection, extra: Extra, removed: frozenset[str]) -> Any:
    """`extra.write` inside a savepoint: a mistake in it costs what it writes, never the group's
    readings and their acks. Storage trouble fails the whole group, as it would anyway."""
    if extra.write is None:
        return None
    savepoint = conn.begin_nested()
    try:
        result = extra.write(conn, removed=removed)
    except Exception as exc:
        savepoint.rollback()
        if is_storage_error(exc):
            raise
        log.exception("writing the alerts of a group failed; its readings are stored without them")
        return _NO_EXTRA
    savepoint.commit()
    return result


def _probe(conn: Connection) -> None:
    conn.execute(text("SELECT 1"))


def _consume_probe(done: asyncio.Future[Any]) -> None:
    if not done.cancelled():
        done.exception()


@dataclass(slots=True)
class _Rows:
    readings: list[tuple[int, int, float, bool]]  # (series_id, ts, value, is_bool)
    latest: dict[int, tuple[int, float, bool]]  # series id -> newest (ts, value, is_bool) in the group

    @staticmethod
    def build(group: list[Batch], ids: dict[str, dict[str, int]]) -> _Rows | None:
        """Rows for the group from known series ids; None if any series is not known yet."""
        out: list[tuple[int, int, float, bool]] = []
        latest: dict[int, tuple[int, float, bool]] = {}
        for batch in group:
            dev_ids = ids.get(batch.device_id)
            if dev_ids is None:
                return None
            for metric, ts, value, is_bool in batch.rows:
                sid = dev_ids.get(metric)
                if sid is None:
                    return None
                out.append((sid, ts, value, is_bool))
                last = latest.get(sid)
                if last is None or ts > last[0]:
                    latest[sid] = (ts, value, is_bool)
        return _Rows(out, latest)


# The hot path, on the raw driver cursor: one statement per table, so the GIL is released for each
# whole statement (see the module docstring). SQLite reads the rows from one JSON array; doubles
# survive the trip exactly (orjson writes the shortest text that parses back to the same double).
# PostgreSQL gets each column as one array and unnests it.

_SQLITE_INSERT_READINGS = (
    "INSERT INTO readings (series_id, ts, value, is_bool) "
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), "
    "json_extract(value, '$[3]') FROM json_each(?) WHERE true ON CONFLICT DO NOTHING"
)
_SQLITE_UPDATE_LATEST = (
    "UPDATE series SET last_ts = v.ts, last_value = v.value, last_is_bool = v.b "
    "FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS ts, "
    "json_extract(value, '$[2]') AS value, json_extract(value, '$[3]') AS b FROM json_each(?)) AS v "
    "WHERE series.id = v.id AND (series.last_ts IS NULL OR series.last_ts < v.ts)"
)
_SQLITE_UPDATE_SEEN = "UPDATE devices SET last_seen = ? WHERE id IN (SELECT value FROM json_each(?))"


def _store_rows_sqlite(cur: Any, rows: _Rows, present: set[str], seen: int) -> None:
    cur.execute(_SQLITE_INSERT_READINGS, (orjson.dumps(rows.readings),))
    latest = [(sid, ts, v, b) for sid, (ts, v, b) in rows.latest.items()]
    cur.execute(_SQLITE_UPDATE_LATEST, (orjson.dumps(latest),))
    cur.execute(_SQLITE_UPDATE_SEEN, (seen, orjson.dumps(sorted(present))))


def _store_rows_postgres(cur: Any, rows: _Rows, present: set[str], seen: int) -> None:
    sids, stamps, values, flags = (list(col) for col in zip(*rows.readings, strict=True))
    cur.execute(
        "INSERT INTO readings (series_id, ts, value, is_bool) "
        "SELECT * FROM unnest(%s::integer[], %s::bigint[], %s::float8[], %s::boolean[]) "
        "ON CONFLICT DO NOTHING",
        (sids, stamps, values, flags),
    )
    latest = [(sid, ts, v, b) for sid, (ts, v, b) in rows.latest.items()]
    cur.execute(
        "UPDATE series SET last_ts = v.ts, last_value = v.value, last_is_bool = v.b "
        "FROM unnest(%s::integer[], %s::bigint[], %s::float8[], %s::boolean[]) AS v(id, ts, value, b) "
        "WHERE series.id = v.id AND (series.last_ts IS NULL OR series.last_ts < v.ts)",
        tuple(list(col) for col in zip(*latest, strict=True)),
    )
    cur.execute("UPDATE devices SET last_seen = %s WHERE id = ANY(%s)", (seen, list(present)))
