"""Device records: the writes (run on the batching writer) and the reads (run anywhere)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from pulsewire.storage.layout import RAW
from pulsewire.storage.schema import blocks, devices, readings, series


class DeviceExists(Exception):
    pass


class DeviceNotFound(Exception):
    pass


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    id: str
    name: str
    created_at: int
    last_seen: int | None
    fw: str | None
    interval_ms: int | None  # set by set_interval; None: the server's sample_interval_ms
    metrics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LatestValue:
    ts: int
    value: float | bool


# Writes: each returns a function for BatchingWriter.call, which runs it in its own transaction.


def add_device(device_id: str, name: str, token_digest: str, created_at: int) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(devices).values(id=device_id, name=name, token_hash=token_digest, created_at=created_at)
                )
        except IntegrityError:
            raise DeviceExists(device_id) from None

    return run


def set_token(device_id: str, token_digest: str) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        done = conn.execute(update(devices).where(devices.c.id == device_id).values(token_hash=token_digest))
        if done.rowcount == 0:
            raise DeviceNotFound(device_id)

    return run


def set_interval(device_id: str, interval_ms: int) -> Callable[[Connection], None]:
    """The device's own sampling interval, sent in its welcome from now on."""

    def run(conn: Connection) -> None:
        done = conn.execute(update(devices).where(devices.c.id == device_id).values(interval_ms=interval_ms))
        if done.rowcount == 0:
            raise DeviceNotFound(device_id)

    return run


def remove_device(device_id: str, *, purge: bool) -> Callable[[Connection], int]:
    """Remove the device; with `purge`, its readings too. Returns how many readings were purged."""

    def run(conn: Connection) -> int:
        if conn.execute(delete(devices).where(devices.c.id == device_id)).rowcount == 0:
            raise DeviceNotFound(device_id)
        if not purge:
            return 0
        ids = select(series.c.id).where(series.c.device_id == device_id).scalar_subquery()
        raw = (blocks.c.series_id.in_(ids), blocks.c.res == RAW.code)
        packed = conn.execute(select(func.coalesce(func.sum(blocks.c.n), 0)).where(*raw)).scalar_one()
        purged = conn.execute(delete(readings).where(readings.c.series_id.in_(ids))).rowcount + int(packed)
        conn.execute(delete(blocks).where(blocks.c.series_id.in_(ids)))
        conn.execute(delete(series).where(series.c.device_id == device_id))
        return purged

    return run


# Reads.


def device_for_token(conn: Connection, token_digest: str) -> str | None:
    return conn.execute(select(devices.c.id).where(devices.c.token_hash == token_digest)).scalar_one_or_none()


def device_exists(conn: Connection, device_id: str) -> bool:
    return conn.execute(select(devices.c.id).where(devices.c.id == device_id)).first() is not None


def interval_of(conn: Connection, device_id: str) -> int | None:
    """The device's own sampling interval, or None when it has none (or does not exist)."""
    return conn.execute(select(devices.c.interval_ms).where(devices.c.id == device_id)).scalar_one_or_none()


def list_devices(conn: Connection, device_id: str | None = None) -> list[DeviceRecord]:
    query = select(devices).order_by(devices.c.id)
    metric_query = select(series.c.device_id, series.c.metric).order_by(series.c.metric)
    if device_id is not None:
        query = query.where(devices.c.id == device_id)
        metric_query = metric_query.where(series.c.device_id == device_id)
    metrics: dict[str, list[str]] = {}
    for dev, metric in conn.execute(metric_query):
        metrics.setdefault(dev, []).append(metric)
    return [
        DeviceRecord(
            id=row.id,
            name=row.name,
            created_at=row.created_at,
            last_seen=row.last_seen,
            fw=row.fw,
            interval_ms=row.interval_ms,
            metrics=tuple(metrics.get(row.id, ())),
        )
        for row in conn.execute(query)
    ]


def get_device(conn: Connection, device_id: str) -> DeviceRecord | None:
    found = list_devices(conn, device_id)
    return found[0] if found else None


def latest_values(conn: Connection, device_id: str | None = None) -> dict[str, dict[str, LatestValue]]:
    """device id -> metric -> latest value, for one device or all."""
    query = select(
        series.c.device_id, series.c.metric, series.c.last_ts, series.c.last_value, series.c.last_is_bool
    ).where(series.c.last_ts.is_not(None))
    if device_id is not None:
        query = query.where(series.c.device_id == device_id)
    out: dict[str, dict[str, LatestValue]] = {}
    for dev, metric, ts, value, is_bool in conn.execute(query.order_by(series.c.device_id, series.c.metric)):
        out.setdefault(dev, {})[metric] = LatestValue(ts, bool(value) if is_bool else value)
    return out
