"""The single write path: a batching writer with group commit.

Device handlers hand over validated batches and get a future back. One task gathers every batch
that is waiting (up to `group_values` values) into one transaction, runs it on a dedicated thread,
and only after the commit calls `on_commit` (live push) and resolves the futures (acks). Under load
the groups grow, so the cost of a commit is shared by many batches.

The queue is bounded: when the disk is slower than the network, `submit` waits, the device
handler stops reading its socket, and TCP pushes back on the devices.

Other writes (device registration, rotation, removal) go through `call`, in their own transaction
on the same thread, so there is exactly one writer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, bindparam, select, text

from pulsewire.clock import now_ms
from pulsewire.metrics import Metrics
from pulsewire.storage.schema import devices

log = logging.getLogger("pulsewire.writer")

T = TypeVar("T")


class StorageError(Exception):
    """A group commit failed; nothing of the group is stored and nothing is acked."""


class DeviceRemoved(StorageError):
    """The batch's device was removed before the batch reached the database; it is not stored."""


@dataclass(slots=True)
class Batch:
    device_id: str
    data: list[dict[str, Any]]  # validated readings, as received
    rows: list[tuple[str, int, float, bool]]  # (metric, ts, value, is_bool)
    done: asyncio.Future[None] = field(repr=False)


@dataclass(slots=True)
class _Call:
    fn: Callable[[Connection], Any]
    done: asyncio.Future[Any] = field(repr=False)


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
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._group_values = group_values
        self._on_commit = on_commit
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_batches)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pulsewire-writer")
        self._task: asyncio.Task[None] | None = None
        self._carry: Any = None
        # (device_id, metric) -> series id; touched only on the writer thread.
        self._series_ids: dict[tuple[str, str], int] = {}
        self._sql = _Statements(engine.dialect.paramstyle)
        metrics.write_queue_depth.set_function(self._queue.qsize)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pulsewire-writer")

    async def stop(self) -> None:
        """Commit everything already queued, then stop."""
        if self._task is None:
            return
        await self._queue.put(_STOP)
        await self._task
        self._task = None
        self._thread.shutdown(wait=True)

    async def submit(self, device_id: str, data: list[dict[str, Any]], rows: list[tuple[str, int, float, bool]]) -> asyncio.Future[None]:
        """Queue a batch; waits while the queue is full. The future resolves after the commit."""
        self._check_running()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put(Batch(device_id, data, rows, done))
        return done

    async def call(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn(connection)` in its own transaction on the writer thread and return its result."""
        self._check_running()
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Call(fn, done))
        return await done

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _check_running(self) -> None:
        if not self.running:
            raise StorageError("the writer is not running")

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
            group = [item]
            values = len(item.rows)
            while values < self._group_values and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if not isinstance(nxt, Batch):
                    self._carry = nxt
                    break
                group.append(nxt)
                values += len(nxt.rows)
            await self._commit(group, values)

    async def _run_call(self, item: _Call) -> None:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._thread, self._call_in_thread, item.fn)
        except Exception as exc:  # handed to the caller, who decides what it means
            if not item.done.done():
                item.done.set_exception(exc)
        else:
            if not item.done.done():
                item.done.set_result(result)

    def _call_in_thread(self, fn: Callable[[Connection], Any]) -> Any:
        try:
            with self._engine.begin() as conn:
                return fn(conn)
        finally:
            # A call may add or purge devices and series: forget cached series ids.
            self._series_ids.clear()

    async def _commit(self, group: list[Batch], values: int) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            removed = await loop.run_in_executor(self._thread, self._write_group, group)
        except Exception as exc:
            self._series_ids.clear()  # ids cached during the failed transaction were rolled back
            self._metrics.storage_errors.inc()
            log.error(
                "group commit failed; devices will resend",
                extra={"batches": len(group), "values": values, "error": f"{type(exc).__name__}: {exc}"[:300]},
            )
            failure = StorageError(f"storage failed: {type(exc).__name__}")
            for batch in group:
                if not batch.done.done():
                    batch.done.set_exception(failure)
            return
        if removed:
            gone = DeviceRemoved("device removed")
            for batch in group:
                if batch.device_id in removed:
                    batch.done.set_exception(gone)
            group = [b for b in group if b.device_id not in removed]
            values = sum(len(b.rows) for b in group)
        m = self._metrics
        m.commit_seconds.observe(time.perf_counter() - started)
        m.group_batches.observe(len(group))
        m.readings.inc(sum(len(b.data) for b in group))
        m.values.inc(values)
        try:
            self._on_commit(group)
        except Exception:  # live push must never cost an ack
            log.exception("live push after commit failed")
        for batch in group:
            if not batch.done.done():
                batch.done.set_result(None)

    def _write_group(self, group: list[Batch]) -> set[str]:
        """Store the group in one transaction; returns the devices that no longer exist (not stored)."""
        with self._engine.begin() as conn:
            # Checked inside the transaction, so a removal (and purge) is never undone by a late batch.
            wanted = {b.device_id for b in group}
            present = set(conn.execute(select(devices.c.id).where(devices.c.id.in_(wanted))).scalars())
            removed = wanted - present
            if removed:
                group = [b for b in group if b.device_id not in removed]
                if not group:
                    return removed
            ids = self._resolve_series(conn, group)
            rows: list[tuple[int, int, float, bool]] = []
            latest: dict[int, tuple[int, float, bool]] = {}
            for batch in group:
                dev = batch.device_id
                for metric, ts, value, is_bool in batch.rows:
                    sid = ids[(dev, metric)]
                    rows.append((sid, ts, value, is_bool))
                    last = latest.get(sid)
                    if last is None or ts > last[0]:
                        latest[sid] = (ts, value, is_bool)
            raw = conn.connection.driver_connection
            cur = raw.cursor()  # type: ignore[union-attr]
            try:
                cur.executemany(self._sql.insert_reading, rows)
                cur.executemany(
                    self._sql.update_latest,
                    [(ts, value, is_bool, sid, ts) for sid, (ts, value, is_bool) in latest.items()],
                )
                seen = now_ms()
                cur.executemany(self._sql.update_seen, [(seen, dev) for dev in present])
            finally:
                cur.close()
        return removed

    def _resolve_series(self, conn: Connection, group: list[Batch]) -> dict[tuple[str, str], int]:
        ids = self._series_ids
        missing = {(b.device_id, metric) for b in group for metric, *_ in b.rows} - ids.keys()
        if missing:
            params = [{"d": d, "m": m} for d, m in missing]
            conn.execute(
                text("INSERT INTO series (device_id, metric) VALUES (:d, :m) ON CONFLICT DO NOTHING"), params
            )
            found = conn.execute(
                text("SELECT device_id, metric, id FROM series WHERE device_id IN :devices").bindparams(
                    bindparam("devices", expanding=True)
                ),
                {"devices": sorted({d for d, _ in missing})},
            )
            for device_id, metric, sid in found:
                ids[(device_id, metric)] = sid
        return ids


class _Statements:
    """The hot-path statements, in the driver's own parameter style (executed on the raw cursor)."""

    def __init__(self, paramstyle: str) -> None:
        p = "?" if paramstyle == "qmark" else "%s"
        self.insert_reading = (
            f"INSERT INTO readings (series_id, ts, value, is_bool) VALUES ({p}, {p}, {p}, {p}) ON CONFLICT DO NOTHING"
        )
        self.update_latest = (
            f"UPDATE series SET last_ts = {p}, last_value = {p}, last_is_bool = {p} "
            f"WHERE id = {p} AND (last_ts IS NULL OR last_ts < {p})"
        )
        self.update_seen = f"UPDATE devices SET last_seen = {p} WHERE id = {p}"
