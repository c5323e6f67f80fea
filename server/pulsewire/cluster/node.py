"""This instance's part in a cluster (docs/cluster.md): what it tells the others over the bus, and
what it does with what they tell it.

- Live fan-out: every message the hub makes is published once (`Live`); the others' messages go
  to this instance's dashboards.
- Presence: a device's connection is claimed in Redis's registry (which says whose connection it
  replaced) and announced (`Claim`); the older holder, wherever it is, closes its connection. Every
  instance mirrors who holds what (`Presence.remote`) from the claims and the `Status` offline
  messages, so listings and commands need no round trip to Redis.
- Commands: a command for a device held elsewhere goes to its holder (`Command`), which sends it
  and answers (`Result`).
- An instance that dies (its heartbeats stop): every instance forgets its devices and tells its own
  dashboards they are offline; one of them (the one that takes its registry entries) stores their
  last_seen and judges their alerts from then on.
- Alerts: the instance holding a device judges it (alerts/runtime.py, `adopt`, `let_go`); a rule
  edit or an acknowledgement anywhere makes every instance read rules and states again (`AlertsChanged`).
- Rollouts: a change stored anywhere makes every instance read that rollout again (`RolloutChanged`)
  and send `update` to its own devices whose turn came (releases/runtime.py).

Redis trouble never stops ingest: every call here is bounded, and when Redis is down this instance
goes on alone; when it returns, the instance claims its connections again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from pulsewire.alerts.runtime import Alerting
from pulsewire.channels import commands
from pulsewire.channels.hub import LiveHub
from pulsewire.channels.presence import Connection, Presence
from pulsewire.clock import now_ms
from pulsewire.cluster import envelope as env
from pulsewire.cluster.bus import BusUnavailable, RedisBus
from pulsewire.metrics import Metrics
from pulsewire.protocol import device as codec
from pulsewire.protocol import live
from pulsewire.releases.runtime import Rollouts
from pulsewire.storage.writer import BatchingWriter

log = logging.getLogger("pulsewire.cluster")

REPLY_SLACK_S = 2.0  # beyond the command's own wait: the two hops over the bus
REPLACED = "replaced by a newer connection of the same device"
UNREACHABLE = "unreachable"  # RemoteFailed: the device's instance cannot be reached (Redis is away)


class RemoteFailed(Exception):
    """A command sent to another instance got no answer from the device: `error` says why."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def instance_id() -> str:
    """Unique per process: the host's name, the pid and a random tail (readable in logs and metrics)."""
    host = "".join(c if c.isalnum() or c in "-_." else "-" for c in socket.gethostname())[:32] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


class ClusterNode:
    def __init__(
        self,
        redis_url: str,
        hub: LiveHub,
        presence: Presence,
        writer: BatchingWriter,
        alerting: Alerting,
        rollouts: Rollouts,
        metrics: Metrics,
    ) -> None:
        self.id = instance_id()
        self._hub = hub
        self._presence = presence
        self._writer = writer
        self._alerting = alerting
        self._rollouts = rollouts
        self._replies: dict[str, asyncio.Future[env.Result]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.bus = RedisBus(redis_url, self.id, self._on_message, on_health=self._on_health)
        metrics.registry.register(_BusCollector(self))

    async def start(self) -> None:
        self._hub.relay = self._relay
        self._alerting.clustered()
        self._alerting.on_changed = lambda: self.bus.publish(env.AlertsChanged(self.id))
        self._rollouts.on_changed = lambda rollout_id: self.bus.publish(env.RolloutChanged(self.id, id=rollout_id))
        await self.bus.start()
        log.info("cluster instance started", extra={"instance": self.id, "bus": "up" if self.bus.healthy else "down"})

    async def stop(self) -> None:
        self._hub.relay = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.bus.stop()

    def report(self) -> dict[str, Any]:
        """What /readyz says of the cluster: the bus's state never makes the instance unready."""
        up = self.bus.healthy
        return {"instance": self.id, "bus": "up" if up else "down", "instances": len(self.bus.alive()) if up else None}

    # --- what this instance tells ----------------------------------------------------------------

    def _relay(self, device_id: str | None, encoded: str) -> None:
        self.bus.publish(env.Live(self.id, device=device_id, data=encoded))

    async def claim(self, conn: Connection) -> None:
        """`conn` holds its device now: registered (remembering whose connection it replaced) and announced."""
        self._presence.forget_remote(conn.device_id)
        try:
            conn.replaced = await self.bus.claim(conn.device_id, conn.nonce)
            self.bus.publish(env.Claim(self.id, device=conn.device_id, conn=conn.nonce))
        except BusUnavailable:
            pass  # claimed again when Redis is back (_on_health)
        await self._adopt(conn.device_id)

    async def _adopt(self, device_id: str) -> None:
        try:
            await self._alerting.adopt(device_id)
        except Exception:  # storage trouble: the device's batches are refused too, and it comes back
            log.exception("taking over the device's alert states failed", extra={"device": device_id})

    async def release(self, conn: Connection) -> bool:
        """`conn` has ended: True when the device is offline now (no newer connection holds it anywhere)."""
        if conn.moved:
            return False
        try:
            still_held = await self.bus.release(conn.device_id, conn.nonce)
        except BusUnavailable:
            still_held = True  # alone: as far as this instance can tell, the device is offline
        if still_held:
            self.bus.publish(env.Status(self.id, device=conn.device_id, online=False, ts=now_ms()))
        return still_held

    def close_everywhere(self, device_id: str, code: int, reason: str) -> None:
        """The device's token was revoked or the device removed: its connection on another instance ends too."""
        self.bus.publish(env.Close(self.id, device=device_id, code=code, reason=reason))

    async def command(self, device_id: str, name: str, args: dict[str, Any], wait: float) -> env.Result:
        """Run the command on the instance holding the device; raises RemoteFailed with why it got no answer."""
        holder = self._presence.held_by(device_id)
        if holder is None:
            raise RemoteFailed(env.ERR_OFFLINE)
        if not self.bus.healthy:
            raise RemoteFailed(UNREACHABLE)
        command_id = commands.new_id()
        reply: asyncio.Future[env.Result] = asyncio.get_running_loop().create_future()
        self._replies[command_id] = reply
        try:
            self.bus.send(holder, env.Command(self.id, device_id, command_id, name, args, self.id, wait))
            async with asyncio.timeout((wait or commands.SEND_TIMEOUT_S) + REPLY_SLACK_S):
                result = await reply
        except TimeoutError:
            raise RemoteFailed(env.ERR_TIMEOUT) from None
        finally:
            self._replies.pop(command_id, None)
        if result.error is not None:
            raise RemoteFailed(result.error)
        return result

    # --- what the others tell ----------------------------------------------------------------

    def _on_message(self, message: env.Envelope) -> None:
        match message:
            case env.Live(device=device_id, data=data):
                self._hub.deliver(device_id, data)
            case env.Claim(sender=sender, device=device_id, conn=nonce):
                self._claimed(sender, device_id, nonce)
            case env.Status(sender=sender, device=device_id, online=False):
                self._presence.drop_remote(device_id, sender)
            case env.Command():
                self._spawn(self._run_command(message))
            case env.Result(id=command_id):
                reply = self._replies.get(command_id)
                if reply is not None and not reply.done():
                    reply.set_result(message)
            case env.Close(device=device_id, code=code, reason=reason):
                conn = self._presence.get(device_id)
                if conn is not None:
                    self._spawn(conn.close(code, reason))
            case env.Gone(instance=instance):
                self._spawn(self._gone(instance))
            case env.AlertsChanged():
                self._spawn(self._alerting.reload())
            case env.RolloutChanged(id=rollout_id):
                self._rollouts.reload(rollout_id)

    def _claimed(self, sender: str, device_id: str, nonce: str) -> None:
        """Another instance took the device's connection: close ours unless ours is the newer."""
        conn = self._presence.get(device_id)
        if conn is not None and conn.replaced == f"{sender}:{nonce}":
            return  # ours replaced that one: the older holder closes, not us
        self._presence.hold_remote(device_id, sender)
        self._alerting.let_go(device_id)
        if conn is not None:
            conn.moved = True
            self._spawn(conn.close(codec.CLOSE_REPLACED, REPLACED))

    async def _run_command(self, message: env.Command) -> None:
        conn = self._presence.get(message.device)
        if conn is None:
            self._answer(message, error=env.ERR_OFFLINE)
            return
        budget = message.wait or commands.SEND_TIMEOUT_S
        try:
            async with asyncio.timeout(budget):
                pending = await commands.send(conn, message.name, message.args, message.id)
                if message.wait == 0:
                    self._answer(message, ok=True)
                    return
                answer = await asyncio.shield(pending.answer)
        except TimeoutError:
            self._answer(message, error=env.ERR_TIMEOUT)
            return
        except (commands.ConnectionEnded, commands.NotStored):
            self._answer(message, error=env.ERR_ENDED)
            return
        self._answer(message, ok=answer.ok, detail=answer.detail)

    def _answer(
        self, message: env.Command, ok: bool = False, detail: str | None = None, error: str | None = None
    ) -> None:
        self.bus.send(message.reply, env.Result(self.id, id=message.id, ok=ok, detail=detail, error=error))

    async def _gone(self, instance: str) -> None:
        """`instance` left or died: its devices are offline until they connect again (through another)."""
        devices = self._presence.drop_instance(instance)
        seen = now_ms()
        for device_id in devices:
            self._hub.deliver(device_id, live.status(device_id, False, seen))
        try:
            taken = await self.bus.take_over(instance)
        except BusUnavailable:
            return
        for device_id in taken:  # only one instance gets them: it stores when they were last seen
            with contextlib.suppress(Exception):
                await self._writer.touch(device_id, seen)
            await self._adopt(device_id)
        if taken:
            log.info(
                "devices of a departed instance marked offline", extra={"instance": instance, "devices": len(taken)}
            )

    def _on_health(self, healthy: bool) -> None:
        if healthy:
            self._spawn(self._resync())

    async def _resync(self) -> None:
        """Back on the bus (at start, or after Redis was away): claim this instance's connections again,
        and read who holds the rest."""
        with contextlib.suppress(BusUnavailable):
            for conn in self._presence.local():
                if not conn.ended:
                    conn.replaced = await self.bus.claim(conn.device_id, conn.nonce)
                    self.bus.publish(env.Claim(self.id, device=conn.device_id, conn=conn.nonce))
            alive = self.bus.alive()
            elsewhere = {}
            for device_id, holder in (await self.bus.holders()).items():
                instance = holder.rsplit(":", 1)[0]
                if instance != self.id and instance in alive and self._presence.get(device_id) is None:
                    elsewhere[device_id] = instance
            self._presence.mirror(elsewhere)  # what went offline elsewhere while Redis was away is forgotten

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _BusCollector(Collector):
    """The bus's own counts, read at each scrape."""

    def __init__(self, node: ClusterNode) -> None:
        self._node = node

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        bus = self._node.bus
        yield GaugeMetricFamily(
            "pulsewire_cluster_bus_up",
            "1 while this instance is connected to the cluster's Redis",
            value=int(bus.healthy),
        )
        yield GaugeMetricFamily(
            "pulsewire_cluster_instances",
            "Instances seen alive at the last heartbeat",
            value=len(bus.alive()) if bus.healthy else 0,
        )
        yield CounterMetricFamily(
            "pulsewire_cluster_published", "Envelopes published to the other instances", value=bus.published
        )
        yield CounterMetricFamily(
            "pulsewire_cluster_received", "Envelopes received from the other instances", value=bus.received
        )
        yield CounterMetricFamily(
            "pulsewire_cluster_dropped", "Envelopes not published (Redis away, or the outbox full)", value=bus.dropped
        )
        yield CounterMetricFamily(
            "pulsewire_cluster_malformed", "Messages on the bus that were not valid envelopes", value=bus.malformed
        )
