"""Rollouts at run time: `update` commands to online devices, progress from results, hellos and readings.

Every active rollout (running, paused, halted) is held in memory, indexed by device: the device
channel asks it about each hello (`hello`) and, for devices on trial only, about their readings
(`streaming`). Each change is computed by the pure core (`rollout.py`), stored through the writer,
and only then kept and pushed to `/ws/live` as a `rollout` message. One lock orders the changes:
a result, a hello and a pause never interleave.

A device gets its `update` when its turn comes and it is online, or else right after its next
hello. The command's result arrives on its own task; a connection that ends first changes
nothing: the device's next hello says where it stands. A clock task fails the devices that have
been under way longer than `rollout_step_timeout_s` (`rollout.expire`).

In a cluster every instance follows every active rollout for the devices connected to it: each
change stored here is announced (`on_changed`), and the others read that rollout again from the
database (`reload`, at most twice a second per rollout) and send `update` to their own devices
whose turn has come.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool

from pulsewire.channels import commands
from pulsewire.channels.hub import LiveHub
from pulsewire.channels.presence import Connection, PendingCommand, Presence
from pulsewire.clock import now_ms
from pulsewire.metrics import Metrics
from pulsewire.protocol import live
from pulsewire.protocol.device import Boot
from pulsewire.releases import rollout as machine
from pulsewire.releases.rollout import Rollout
from pulsewire.settings import Settings
from pulsewire.storage import releases as store
from pulsewire.storage.reads import Reads
from pulsewire.storage.writer import BatchingWriter

log = logging.getLogger("pulsewire.rollouts")

MAX_ACTIVE = 100_000  # active rollouts loaded at start: every one, in practice
CMD_UPDATE = "update"  # docs/protocol.md: sent by rollouts only, never through POST .../commands
RELOAD_GATHER_S = 0.5  # in a cluster: the changes of this long are read back once


class RolloutNotFound(Exception):
    pass


class Rollouts:
    def __init__(
        self,
        writer: BatchingWriter,
        reads: Reads,
        presence: Presence,
        hub: LiveHub,
        metrics: Metrics,
        settings: Settings,
    ) -> None:
        self._writer = writer
        self._reads = reads
        self._presence = presence
        self._hub = hub
        self._metrics = metrics
        self._root_path = (settings.root_path or "").rstrip("/")
        self._timeout_ms = round(settings.rollout_step_timeout_s * 1000)
        self._active: dict[str, Rollout] = {}
        self._by_device: dict[str, str] = {}  # device id -> the active rollout it is in
        self._trial: set[str] = set()  # devices on trial: their next readings confirm them
        self._files: dict[str, list[dict[str, Any]]] = {}  # version -> its files, as `update` lists them
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()  # results being waited for, and the clock
        self.on_changed: Callable[[str], None] = lambda rollout_id: None  # stored here: tell the cluster
        self._reloading: set[str] = set()  # rollouts with a reload on its way
        self._gauges(metrics)

    async def start(self) -> None:
        for found in await run_in_threadpool(self._reads.rollouts, MAX_ACTIVE, True):
            self._track(found)
        self._keep(asyncio.create_task(self._clock()))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _gauges(self, metrics: Metrics) -> None:
        """The gauges read the active rollouts at each scrape, rather than being kept up to date."""
        for state in machine.ACTIVE_STATES:
            metrics.rollouts.labels(state).set_function(partial(self._in_state, state))
        for step in machine.STEPS:
            metrics.rollout_devices.labels(step).set_function(partial(self._at_step, step))

    def _in_state(self, state: str) -> int:
        return sum(r.state == state for r in self._active.values())

    def _at_step(self, step: str) -> int:
        return sum(r.counts()[step] for r in self._active.values())

    async def _clock(self) -> None:
        """Expire the devices under way too long; looks four times per timeout, at least every 30 s."""
        period = min(30.0, self._timeout_ms / 4000)
        while True:
            await asyncio.sleep(period)
            for rollout_id in list(self._active):
                try:
                    await self._expire(rollout_id)
                except Exception:  # the writer refused (storage trouble): the next look tries again
                    log.exception("expiring a rollout's steps failed", extra={"rollout": rollout_id})

    async def _expire(self, rollout_id: str) -> None:
        async with self._lock:
            current = self._active.get(rollout_id)
            if current is not None:
                after = await self._save(current, machine.expire(current, now_ms(), self._timeout_ms))
                await self._dispatch(after)

    # --- what the HTTP API asks -------------------------------------------------------------------

    async def begin(self, version: str, device_ids: list[str] | None, canary_percent: int) -> Rollout:
        """Store a new rollout (storage/releases.py refusals pass through) and send its first updates."""
        rollout_id = "ro_" + secrets.token_hex(8)
        planned = await self._writer.call(
            store.start_rollout(rollout_id, version, device_ids, canary_percent, now_ms())
        )
        async with self._lock:
            self._track(planned)
            self.on_changed(rollout_id)
            self._hub.publish_rollout(None, live.rollout(machine.summary_json(planned), None))
            log.info(
                "rollout started",
                extra={"rollout": rollout_id, "version": version, "devices": len(planned.targets)},
            )
            await self._dispatch(planned)
        return self._active.get(rollout_id, planned)

    async def control(self, rollout_id: str, action: Callable[[Rollout, int], Rollout]) -> Rollout:
        """Pause, resume or abort (`rollout.pause` ...): machine.Conflict when its state does not allow it."""
        async with self._lock:
            current = self._active.get(rollout_id)
            if current is None:
                found = await run_in_threadpool(self._reads.rollout, rollout_id)
                if found is None:
                    raise RolloutNotFound(rollout_id)
                current = found
            after = await self._save(current, action(current, now_ms()))
            log.info("rollout " + after.state, extra={"rollout": rollout_id})
            await self._dispatch(after)
            return self._active.get(rollout_id, after)

    def reload(self, rollout_id: str) -> None:
        """Another instance changed the rollout: read it again soon (changes that come close together
        are read once) and send what is due to this instance's devices."""
        if rollout_id not in self._reloading:
            self._reloading.add(rollout_id)
            self._keep(asyncio.create_task(self._reload(rollout_id)))

    async def _reload(self, rollout_id: str) -> None:
        await asyncio.sleep(RELOAD_GATHER_S)
        self._reloading.discard(rollout_id)
        try:
            found = await run_in_threadpool(self._reads.rollout, rollout_id)
            if found is None:
                return
            async with self._lock:
                self._track(found)
                await self._dispatch(found)
        except Exception:
            log.exception("reading a rollout another instance changed failed", extra={"rollout": rollout_id})

    def in_use(self, version: str) -> bool:
        return any(r.version == version for r in self._active.values())

    # --- what the device channel tells ------------------------------------------------------------

    async def hello(self, conn: Connection, fw: str | None, boot: Boot | None) -> None:
        """The device said hello and has its welcome: move its step, then send what is due."""
        rollout_id = self._by_device.get(conn.device_id)
        if rollout_id is None:
            return
        async with self._lock:
            current = self._active.get(rollout_id)
            if current is None:
                return
            after = await self._save(current, machine.hello(current, conn.device_id, fw, boot, now_ms()))
            await self._dispatch(after)

    def on_trial(self, device_id: str) -> bool:
        return device_id in self._trial

    async def streaming(self, device_id: str) -> None:
        """Readings from a device on trial: its board has confirmed the new version."""
        rollout_id = self._by_device.get(device_id)
        async with self._lock:
            current = self._active.get(rollout_id or "")
            if current is None or device_id not in self._trial:
                return
            after = await self._save(current, machine.streaming(current, device_id, now_ms()))
            await self._dispatch(after)

    # --- sending and recording -----------------------------------------------------------------

    async def _dispatch(self, current: Rollout) -> None:
        """Send `update` to every device whose turn it is and that is online (under the lock), then
        store their steps in one write."""
        due = [self._ready(device_id) for device_id in machine.due(current)]
        online = [conn for conn in due if conn is not None]  # the others get it after their next hello
        if not online:
            return
        args: dict[str, object] = {
            "rollout": current.id,
            "version": current.version,
            "files": await self._listing(current.version),
            "base": self._base(current),
        }
        sent: list[tuple[str, PendingCommand]] = []
        for conn in online:
            try:
                async with asyncio.timeout(commands.SEND_TIMEOUT_S):
                    sent.append((conn.device_id, await commands.send(conn, CMD_UPDATE, args)))
            except (TimeoutError, commands.ConnectionEnded):
                continue  # still queued: sent after its next hello
        after, now = current, now_ms()
        for device_id, _ in sent:
            after = machine.sent(after, device_id, now)
        await self._save(current, after)
        for device_id, pending in sent:
            self._keep(asyncio.create_task(self._await_result(current.id, device_id, pending)))

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ready(self, device_id: str) -> Connection | None:
        """The device's connection, when it has had its welcome and takes commands."""
        conn = self._presence.get(device_id)
        if conn is None or not conn.ready.is_set() or conn.ended:
            return None
        return conn

    async def _await_result(self, rollout_id: str, device_id: str, pending: PendingCommand) -> None:
        try:
            answer = await pending.answer
        except Exception:  # the connection ended first: the next hello says where the device stands
            return
        async with self._lock:
            current = self._active.get(rollout_id)
            if current is None:
                return
            try:
                after = await self._save(
                    current, machine.result(current, device_id, answer.ok, answer.detail, now_ms())
                )
                await self._dispatch(after)
            except Exception:
                log.exception("recording an update's result failed", extra={"rollout": rollout_id, "device": device_id})

    async def _save(self, before: Rollout, after: Rollout) -> Rollout:
        """Store what changed, then keep it and push it live; the rollout as it now stands."""
        changed = machine.changed(before, after)
        if not changed and (after.state, after.reason, after.forced) == (before.state, before.reason, before.forced):
            return before
        await self._writer.call(store.save_rollout(after, changed))
        self._track(after)
        self.on_changed(after.id)
        summary = machine.summary_json(after)
        for target in changed:
            self._metrics.rollout_steps.labels(target.step).inc()
            self._hub.publish_rollout(target.device, live.rollout(summary, machine.target_json(target)))
            fields = {"rollout": after.id, "device": target.device, "step": target.step, "reason": target.reason}
            log.info("rollout step", extra=fields)
        if after.state != before.state:
            self._hub.publish_rollout(None, live.rollout(summary, None))
            log.info("rollout state", extra={"rollout": after.id, "state": after.state, "reason": after.reason})
        return after

    def _track(self, current: Rollout) -> None:
        for t in current.targets:
            if current.active and t.step == machine.TRIAL:
                self._trial.add(t.device)
            elif self._by_device.get(t.device) in (None, current.id):
                self._trial.discard(t.device)
        if current.active:
            self._active[current.id] = current
            for t in current.targets:
                self._by_device[t.device] = current.id
            return
        self._active.pop(current.id, None)
        for t in current.targets:
            if self._by_device.get(t.device) == current.id:
                del self._by_device[t.device]

    async def _listing(self, version: str) -> list[dict[str, Any]]:
        listing = self._files.get(version)
        if listing is None:
            found = await run_in_threadpool(self._reads.release, version)
            listing = [] if found is None else found.files
            self._files[version] = listing
        return listing

    def _base(self, current: Rollout) -> str:
        return f"{self._root_path}/api/releases/{quote(current.version, safe='')}/files/"

    def forget_release(self, version: str) -> None:
        with contextlib.suppress(KeyError):
            del self._files[version]
