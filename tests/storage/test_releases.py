"""Releases and rollouts in storage, on each backend: files read back byte for byte in order, a
rollout is planned in its own transaction (the release and the devices must exist, no device in two
active rollouts), a release in use stays, and each step written reads back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import pytest
from sqlalchemy import Connection, Engine

from pulsewire.releases import rollout as machine
from pulsewire.releases.bundle import make
from pulsewire.storage import devices
from pulsewire.storage import releases as store

T = TypeVar("T")

BLOB = bytes(range(256)) * 400  # 102,400 bytes: a whole firmware's worth in one file
RELEASE = make("0.4.0", [("session.mpy", BLOB), ("main.py", b'FW_VERSION = "0.4.0"\n')], 6)


def write(engine: Engine, fn: Callable[[Connection], T]) -> T:
    with engine.begin() as conn:  # what the writer's `call` does: one transaction
        return fn(conn)


def read(engine: Engine, fn: Callable[[Connection], T]) -> T:
    with engine.connect() as conn:
        return fn(conn)


def test_a_release_reads_back_byte_for_byte_and_is_stored_once(engine: Engine) -> None:
    stored = write(engine, store.add_release(RELEASE, 5))
    assert stored.files == RELEASE.listing() and stored.size == RELEASE.size
    assert read(engine, store.list_releases) == [stored]
    got = read(engine, lambda c: store.release_file(c, "0.4.0", "session.mpy"))
    assert got is not None and got.data == BLOB and got.sha256 == RELEASE.files[0].sha256
    assert read(engine, lambda c: store.release_file(c, "0.4.0", "nope.mpy")) is None
    with pytest.raises(store.ReleaseExists):
        write(engine, store.add_release(RELEASE, 6))


def test_rollouts_are_planned_in_their_transaction(engine: Engine) -> None:
    for device_id, fw in (("a", "0.3.1"), ("b", "0.4.0"), ("c", None)):
        write(engine, devices.add_device(device_id, device_id, "hash-" + device_id, 1))
        if fw:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"UPDATE devices SET fw = '{fw}' WHERE id = '{device_id}'")
    with pytest.raises(store.ReleaseNotFound):
        write(engine, store.start_rollout("ro_0", "0.4.0", None, 0, 10))
    write(engine, store.add_release(RELEASE, 5))
    with pytest.raises(store.UnknownDevices) as unknown:
        write(engine, store.start_rollout("ro_0", "0.4.0", ["a", "zz"], 0, 10))
    assert unknown.value.ids == ["zz"]
    first = write(engine, store.start_rollout("ro_1", "0.4.0", ["a", "b"], 50, 10))
    assert [(t.device, t.canary, t.step) for t in first.targets] == [("a", True, "queued"), ("b", False, "confirmed")]
    with pytest.raises(store.DevicesBusy) as busy:
        write(engine, store.start_rollout("ro_2", "0.4.0", None, 0, 11))  # every device: a and b are taken
    assert busy.value.busy == {"a": "ro_1", "b": "ro_1"}
    with pytest.raises(store.ReleaseInUse) as in_use:
        write(engine, store.delete_release("0.4.0"))
    assert in_use.value.rollout_ids == ["ro_1"]

    moved = machine.sent(first, "a", 20)
    write(engine, store.save_rollout(moved, machine.changed(first, moved)))
    back = read(engine, lambda c: store.rollouts_where(c, rollout_id="ro_1"))
    assert back == [moved]
    assert read(engine, lambda c: store.rollouts_where(c, active=True)) == [moved]

    aborted = machine.abort(moved, 30)
    write(engine, store.save_rollout(aborted, []))
    assert read(engine, lambda c: store.rollouts_where(c, active=True)) == []
    second = write(engine, store.start_rollout("ro_2", "0.4.0", None, 0, 40))  # free again
    assert [t.device for t in second.targets] == ["a", "b", "c"]
    assert [r.id for r in read(engine, lambda c: store.rollouts_where(c, limit=10))] == ["ro_2", "ro_1"]
    write(engine, store.save_rollout(replace(machine.abort(second, 50)), []))
    write(engine, store.delete_release("0.4.0"))
    assert read(engine, store.list_releases) == []
    assert read(engine, lambda c: store.release_file(c, "0.4.0", "main.py")) is None
    with pytest.raises(store.ReleaseNotFound):
        write(engine, store.delete_release("0.4.0"))
