"""Virtual devices that speak the device channel with plausible readings.

Each device registers itself through the admin API (or takes a fresh token if its id exists),
says hello, takes the server's clock and interval from welcome, and sends one reading per
interval: temperature, humidity, battery voltage and Wi-Fi RSSI. Un-acked batches are kept
(up to a window) and resent after a reconnect, as a board does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from pulsewire import codec

log = logging.getLogger("pulsewire.simulate")

WINDOW = 8
MAX_BUFFERED = 1000


@dataclass
class Sensors:
    """A slow random walk around a daily cycle, so charts look like a real greenhouse."""

    rng: random.Random
    temperature: float = 21.0
    humidity: float = 45.0
    battery_v: float = 4.15
    rssi: float = -60.0
    phase: float = field(default=0.0)

    def read(self, ts_ms: int) -> dict[str, float]:
        r = self.rng
        day = math.sin((ts_ms / 86_400_000) * 2 * math.pi + self.phase)
        self.temperature += (21 + 4 * day - self.temperature) * 0.05 + r.gauss(0, 0.05)
        self.humidity += (50 - 10 * day - self.humidity) * 0.05 + r.gauss(0, 0.2)
        self.battery_v = max(3.3, self.battery_v - abs(r.gauss(0, 0.0002)))
        self.rssi += (-62 - self.rssi) * 0.1 + r.gauss(0, 1.5)
        return {
            "temperature": round(self.temperature, 2),
            "humidity": round(min(100.0, max(0.0, self.humidity)), 1),
            "battery_v": round(self.battery_v, 3),
            "rssi": round(self.rssi),
        }


async def register(client: httpx.AsyncClient, device_id: str, name: str) -> str:
    """A token for `device_id`: registers it, or rotates the token when it already exists."""
    resp = await client.post("/api/devices", json={"id": device_id, "name": name})
    if resp.status_code == 409:
        resp = await client.post(f"/api/devices/{device_id}/token")
    if resp.status_code >= 400:
        raise RuntimeError(f"cannot register {device_id}: HTTP {resp.status_code} {resp.text[:200]}")
    return str(resp.json()["token"])


def ws_url(base: str) -> str:
    return base.replace("https://", "wss://", 1).replace("http://", "ws://", 1).rstrip("/") + "/ws/device"


async def run_device(base: str, device_id: str, token: str, *, seed: int, stop: asyncio.Event) -> None:
    sensors = Sensors(random.Random(seed), phase=seed * 0.7)
    unsent: deque[dict[str, Any]] = deque(maxlen=MAX_BUFFERED)  # oldest readings drop first when full
    backoff = 1.0
    while not stop.is_set():
        try:
            async with websockets.connect(
                ws_url(base),
                subprotocols=[codec.SUBPROTOCOL],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=10,
            ) as ws:
                backoff = 1.0
                await _session(ws, device_id, sensors, unsent, stop)
        except (TimeoutError, OSError, websockets.WebSocketException) as exc:
            if stop.is_set():
                return
            log.warning(
                "simulated device reconnecting",
                extra={"device": device_id, "error": str(exc)[:120], "in_s": round(backoff, 1)},
            )
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, 30.0)


async def _session(
    ws: ClientConnection, device_id: str, sensors: Sensors, unsent: deque[dict[str, Any]], stop: asyncio.Event
) -> None:
    await ws.send(orjson.dumps({"type": "hello", "fw": "sim-0.1.0", "uptime": int(time.monotonic() * 1000)}).decode())
    welcome = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
    if welcome.get("type") != "welcome":
        raise websockets.InvalidMessage(f"expected welcome, got {welcome.get('type')!r}")
    interval = welcome["interval"] / 1000
    clock_offset = welcome["time"] - time.time() * 1000  # trust the server clock, as a board without RTC does
    inflight: dict[int, list[dict[str, Any]]] = {}  # seq -> readings awaiting their ack
    seq = 0
    wake = asyncio.Event()

    async def flush() -> None:
        nonlocal seq
        while unsent and len(inflight) < WINDOW:
            batch = [unsent.popleft() for _ in range(min(len(unsent), codec.MAX_READINGS_PER_BATCH))]
            seq += 1
            inflight[seq] = batch
            await ws.send(orjson.dumps({"type": "telemetry", "seq": seq, "data": batch}).decode())

    async def receive() -> None:
        async for raw in ws:
            msg = orjson.loads(raw)
            if msg.get("type") in ("ack", "error") and inflight.pop(msg.get("seq"), None) is not None:
                if msg["type"] == "error":
                    log.warning("batch refused", extra={"device": device_id, "detail": msg.get("detail")})
                wake.set()

    reader = asyncio.create_task(receive())
    next_sample = time.monotonic()
    try:
        while not stop.is_set() and not reader.done():
            if time.monotonic() >= next_sample:
                ts = int(time.time() * 1000 + clock_offset)
                unsent.append({"ts": ts, "values": sensors.read(ts)})
                next_sample += interval
            await flush()
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), max(0.0, next_sample - time.monotonic()))
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        # Un-acked batches go back to the front, in order, to be resent on the next connection.
        for seq_no in sorted(inflight, reverse=True):
            unsent.extendleft(reversed(inflight[seq_no]))


async def simulate(
    base: str, admin_key: str, count: int, *, prefix: str = "sim", stop: asyncio.Event | None = None
) -> None:
    """Run `count` virtual devices against the server at `base` until `stop` is set."""
    stop = stop or asyncio.Event()
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {admin_key}"}, timeout=10) as client:
        tokens = [await register(client, f"{prefix}-{i}", f"Simulated {i}") for i in range(1, count + 1)]
    log.info("simulated devices started", extra={"count": count, "ids": f"{prefix}-1..{prefix}-{count}"})
    await asyncio.gather(
        *(run_device(base, f"{prefix}-{i}", tok, seed=i, stop=stop) for i, tok in enumerate(tokens, start=1))
    )
