"""Firmware releases and rollouts: the writes (run on the batching writer) and the reads.

A rollout is planned inside the transaction that stores it (`start_rollout`): the release must
exist, the devices are read with the version each runs now, and none may be in another active
rollout. A release cannot be deleted while an active rollout uses it. Both checks run in the
write's own transaction, so no two requests can slip past each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from pulsewire.releases import rollout as machine
from pulsewire.releases.bundle import Release, ReleaseFile
from pulsewire.releases.rollout import Rollout, Target
from pulsewire.storage.schema import devices, release_files, releases, rollout_devices, rollouts


class ReleaseNotFound(Exception):
    pass


class ReleaseExists(Exception):
    pass


class ReleaseInUse(Exception):
    """A release cannot be deleted while active rollouts use it (`rollout_ids`)."""

    def __init__(self, rollout_ids: list[str]) -> None:
        super().__init__(", ".join(rollout_ids))
        self.rollout_ids = rollout_ids


class UnknownDevices(Exception):
    def __init__(self, ids: list[str]) -> None:
        super().__init__(", ".join(ids))
        self.ids = ids


class DevicesBusy(Exception):
    """Devices already in an active rollout: device id -> that rollout's id."""

    def __init__(self, busy: dict[str, str]) -> None:
        super().__init__(", ".join(f"{d} ({r})" for d, r in sorted(busy.items())))
        self.busy = busy


@dataclass(frozen=True, slots=True)
class StoredRelease:
    version: str
    mpy_version: int | None
    size: int
    created_ms: int
    files: list[dict[str, Any]]  # path, sha256, size, in the order the board writes them


# Writes: each returns a function for BatchingWriter.call, which runs it in its own transaction.


def add_release(release: Release, created_ms: int) -> Callable[[Connection], StoredRelease]:
    def run(conn: Connection) -> StoredRelease:
        if conn.scalar(select(releases.c.version).where(releases.c.version == release.version)) is not None:
            raise ReleaseExists(release.version)
        conn.execute(
            insert(releases).values(
                version=release.version, mpy_version=release.mpy_version, size=release.size, created_ms=created_ms
            )
        )
        rows = [
            {
                "version": release.version,
                "path": f.path,
                "position": i,
                "sha256": f.sha256,
                "size": f.size,
                "data": f.data,
            }
            for i, f in enumerate(release.files)
        ]
        conn.execute(insert(release_files), rows)
        return StoredRelease(release.version, release.mpy_version, release.size, created_ms, release.listing())

    return run


def delete_release(version: str) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        using = sorted(
            conn.scalars(
                select(rollouts.c.id).where(rollouts.c.version == version, rollouts.c.state.in_(machine.ACTIVE_STATES))
            )
        )
        if using:
            raise ReleaseInUse(using)
        if conn.execute(delete(releases).where(releases.c.version == version)).rowcount == 0:
            raise ReleaseNotFound(version)
        conn.execute(delete(release_files).where(release_files.c.version == version))

    return run


def start_rollout(
    rollout_id: str, version: str, device_ids: list[str] | None, canary_percent: int, now: int
) -> Callable[[Connection], Rollout]:
    """Plan and store a rollout of `version` to `device_ids` (None: every registered device)."""

    def run(conn: Connection) -> Rollout:
        if conn.scalar(select(releases.c.version).where(releases.c.version == version)) is None:
            raise ReleaseNotFound(version)
        query = select(devices.c.id, devices.c.fw)
        if device_ids is not None:
            query = query.where(devices.c.id.in_(device_ids))
        firmware = {r.id: r.fw for r in conn.execute(query)}
        if device_ids is not None:
            unknown = [d for d in device_ids if d not in firmware]
            if unknown:
                raise UnknownDevices(unknown)
        busy = _busy(conn, firmware)
        if busy:
            raise DevicesBusy(busy)
        planned = machine.plan(rollout_id, version, firmware, canary_percent, now)
        conn.execute(insert(rollouts).values(**_rollout_row(planned)))
        if planned.targets:
            conn.execute(insert(rollout_devices), [_target_row(planned.id, t) for t in planned.targets])
        return planned

    return run


def save_rollout(rollout: Rollout, targets: Iterable[Target]) -> Callable[[Connection], None]:
    """Store the rollout's state and the targets that changed."""
    changed = [_target_row(rollout.id, t) for t in targets]

    def run(conn: Connection) -> None:
        row = _rollout_row(rollout)
        del row["id"]
        conn.execute(update(rollouts).where(rollouts.c.id == rollout.id).values(**row))
        for values in changed:
            conn.execute(
                update(rollout_devices)
                .where(
                    rollout_devices.c.rollout_id == values.pop("rollout_id"),
                    rollout_devices.c.device_id == values.pop("device_id"),
                )
                .values(**values)
            )

    return run


def _busy(conn: Connection, wanted: Iterable[str]) -> dict[str, str]:
    ids = list(wanted)
    if not ids:
        return {}
    found = conn.execute(
        select(rollout_devices.c.device_id, rollouts.c.id)
        .join(rollouts, rollouts.c.id == rollout_devices.c.rollout_id)
        .where(rollouts.c.state.in_(machine.ACTIVE_STATES), rollout_devices.c.device_id.in_(ids))
    )
    return {r.device_id: r.id for r in found}


def _rollout_row(r: Rollout) -> dict[str, Any]:
    return {
        "id": r.id,
        "version": r.version,
        "canary_percent": r.canary_percent,
        "state": r.state,
        "reason": r.reason,
        "forced": r.forced,
        "created_ms": r.created_ms,
        "updated_ms": r.updated_ms,
    }


def _target_row(rollout_id: str, t: Target) -> dict[str, Any]:
    return {
        "rollout_id": rollout_id,
        "device_id": t.device,
        "canary": t.canary,
        "step": t.step,
        "reason": t.reason,
        "attempts": t.attempts,
        "updated_ms": t.updated_ms,
    }


# Reads: plain functions of a connection (storage/reads.py calls them on a pooled one).


def list_releases(conn: Connection, version: str | None = None) -> list[StoredRelease]:
    query = select(releases).order_by(releases.c.created_ms, releases.c.version)
    if version is not None:
        query = query.where(releases.c.version == version)
    found = list(conn.execute(query))
    if not found:
        return []
    files: dict[str, list[dict[str, Any]]] = {}
    listed = (
        select(release_files.c.version, release_files.c.path, release_files.c.sha256, release_files.c.size)
        .where(release_files.c.version.in_([r.version for r in found]))
        .order_by(release_files.c.version, release_files.c.position)
    )
    for f in conn.execute(listed):
        files.setdefault(f.version, []).append({"path": f.path, "sha256": f.sha256, "size": f.size})
    return [StoredRelease(r.version, r.mpy_version, r.size, r.created_ms, files.get(r.version, [])) for r in found]


def release_file(conn: Connection, version: str, path: str) -> ReleaseFile | None:
    row = conn.execute(
        select(release_files.c.sha256, release_files.c.size, release_files.c.data).where(
            release_files.c.version == version, release_files.c.path == path
        )
    ).first()
    return None if row is None else ReleaseFile(path, row.sha256, row.size, bytes(row.data))


def rollouts_where(
    conn: Connection, *, rollout_id: str | None = None, active: bool = False, limit: int = 100
) -> list[Rollout]:
    """Rollouts, newest first: one by id, the active ones, or the latest `limit`."""
    query = select(rollouts).order_by(rollouts.c.created_ms.desc(), rollouts.c.id).limit(limit)
    if rollout_id is not None:
        query = query.where(rollouts.c.id == rollout_id)
    if active:
        query = query.where(rollouts.c.state.in_(machine.ACTIVE_STATES))
    found = list(conn.execute(query))
    if not found:
        return []
    targets: dict[str, list[Target]] = {}
    rows = conn.execute(
        select(rollout_devices)
        .where(rollout_devices.c.rollout_id.in_([r.id for r in found]))
        .order_by(rollout_devices.c.rollout_id, rollout_devices.c.device_id)
    )
    for t in rows:
        targets.setdefault(t.rollout_id, []).append(
            Target(t.device_id, t.canary, t.step, t.reason, t.attempts, t.updated_ms)
        )
    return [
        Rollout(
            r.id,
            r.version,
            r.canary_percent,
            r.state,
            tuple(targets.get(r.id, ())),
            r.created_ms,
            r.updated_ms,
            r.reason,
            r.forced,
        )
        for r in found
    ]
