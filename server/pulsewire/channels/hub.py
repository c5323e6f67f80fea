"""Live fan-out to dashboards (docs/protocol.md section 2).

Each live client has a bounded queue of encoded messages. Publishing never waits: a message that
does not fit marks the client as fallen behind, and its connection handler drops it. Each message
is encoded once and shared by every client that wants it.

Readings reach the hub either as they arrive (`publish_arrived`: gathered for one turn of the
event loop, then one message per device) or after their commit (`publish_readings`). Merging
keeps the frame count per dashboard near one per device per turn, whatever the batch size.

In a cluster every message made here is also handed to `relay` (cluster/node.py puts it on the
bus once, encoded), and the other instances' messages come back through `deliver`, to this
instance's clients only.

A client joining gets a snapshot read from the database. Readings pushed on arrival before it
joined but committed only after that read would be in neither, so the hub keeps every batch it
pushed until its commit settles, and a joining client's queue starts with those.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from pulsewire.metrics import Metrics
from pulsewire.protocol import live


class LiveClient:
    __slots__ = ("queue", "devices", "behind")

    def __init__(self, queue_size: int) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.devices: frozenset[str] | None = None  # None: every device
        self.behind = asyncio.Event()

    def wants(self, device_id: str) -> bool:
        return self.devices is None or device_id in self.devices

    def subscribe(self, device_ids: Iterable[str] | None) -> None:
        ids = frozenset(device_ids or ())
        self.devices = ids or None


class LiveHub:
    def __init__(self, metrics: Metrics, queue_size: int) -> None:
        self._metrics = metrics
        self._queue_size = queue_size
        self._clients: set[LiveClient] = set()
        self._arrived: dict[str, list[dict[str, Any]]] = {}  # device id -> readings of this turn
        # device id -> batches pushed on arrival whose commit has not settled yet, in arrival order
        self._unsettled: dict[str, deque[list[dict[str, Any]]]] = {}
        # In a cluster: every message made here, for the other instances (device id or None, encoded).
        self.relay: Callable[[str | None, str], None] | None = None

    def join(self) -> LiveClient:
        """A new client; its queue starts with the readings pushed before it joined but not yet stored."""
        client = LiveClient(self._queue_size)
        for device_id, batches in self._unsettled.items():
            data = [reading for batch in batches for reading in batch]
            self._enqueue(client, live.telemetry(device_id, data))
        self._clients.add(client)
        self._metrics.live_clients.set(len(self._clients))
        return client

    def leave(self, client: LiveClient) -> None:
        self._clients.discard(client)
        self._metrics.live_clients.set(len(self._clients))

    def _nobody_listens(self) -> bool:
        return not self._clients and self.relay is None

    def publish_readings(self, batches: Iterable[tuple[str, list[dict[str, Any]]]]) -> None:
        """Push committed readings: one message per device, its batches in commit order."""
        if self._nobody_listens():
            return
        per_device: dict[str, list[dict[str, Any]]] = {}
        for device_id, data in batches:
            per_device.setdefault(device_id, []).extend(data)
        for device_id, data in per_device.items():
            self._offer(device_id, partial(live.telemetry, device_id, data))

    def publish_arrived(self, device_id: str, data: list[dict[str, Any]]) -> None:
        """Push validated readings at the end of this turn of the loop, merged per device.

        `settled(device_id, data)` must follow once the batch's commit succeeded or failed."""
        self._unsettled.setdefault(device_id, deque()).append(data)
        if self._nobody_listens():
            return
        if not self._arrived:
            asyncio.get_running_loop().call_soon(self._flush_arrived)
        self._arrived.setdefault(device_id, []).extend(data)

    def settled(self, device_id: str, data: list[dict[str, Any]]) -> None:
        batches = self._unsettled.get(device_id)
        if batches is None:
            return
        if batches and batches[0] is data:  # commits settle in arrival order
            batches.popleft()
        else:
            for i, batch in enumerate(batches):
                if batch is data:
                    del batches[i]
                    break
        if not batches:
            del self._unsettled[device_id]

    def _flush_arrived(self) -> None:
        arrived, self._arrived = self._arrived, {}
        for device_id, data in arrived.items():
            self._offer(device_id, partial(live.telemetry, device_id, data))

    def publish_status(self, device_id: str, online: bool, ts: int) -> None:
        self._offer(device_id, partial(live.status, device_id, online, ts))

    def publish_alert(self, device_id: str, event: str, alert: dict[str, Any]) -> None:
        self._offer(device_id, partial(live.alert, event, alert))

    def publish_rollout(self, device_id: str | None, encoded: str) -> None:
        """A rollout's progress: a device's step to those who follow it, the rollout's state (None) to all."""
        self._offer(device_id, lambda: encoded)

    def deliver(self, device_id: str | None, encoded: str) -> None:
        """Another instance's message, to this instance's clients that want it (not relayed again)."""
        self._to_clients(device_id, lambda: encoded)

    def _offer(self, device_id: str | None, encode: Callable[[], str]) -> None:
        """Queue the message for every client that wants it, and for the cluster's other instances."""
        if self.relay is not None:
            encoded = encode()
            self.relay(device_id, encoded)
            encode = partial(str, encoded)
        self._to_clients(device_id, encode)

    def _to_clients(self, device_id: str | None, encode: Callable[[], str]) -> None:
        """Queue for every client that wants it (None: every client), encoded once, only if someone does."""
        encoded: str | None = None
        for client in self._clients:
            if client.behind.is_set() or (device_id is not None and not client.wants(device_id)):
                continue
            if encoded is None:
                encoded = encode()
            self._enqueue(client, encoded)

    def _enqueue(self, client: LiveClient, encoded: str) -> None:
        try:
            client.queue.put_nowait(encoded)
        except asyncio.QueueFull:
            client.behind.set()
            self._metrics.live_dropped.inc()
