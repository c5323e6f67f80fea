"""Virtual devices that speak the device channel with plausible readings.

Each device registers itself through the admin API (or takes a fresh token if its id exists),
and then runs the firmware's own protocol code (device/firmware/session.py, ring.py and
rules.py, loaded under CPython): hello, the server's clock and interval from welcome, one
reading per interval into a bounded ring, batches within the un-acked window, acks and errors
freeing the ring, `set_interval` and `reboot` commands answered as the board answers them.
Only the transport differs from a board: the `websockets` library instead of the firmware's own
client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from pulsewire import firmware
from pulsewire.protocol import device as codec

log = logging.getLogger("pulsewire.simulate")

METRICS = ("temperature", "humidity", "battery_v", "rssi")
WINDOW = 8
BATCH = 20
BUFFER = 1000
FRAME_BYTES = 4096


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


def ticks_ms() -> int:
    return int(time.monotonic() * 1000)


@dataclass
class VirtualDevice:
    """What a virtual device keeps in RAM between connections: its ring, its session, its sampling."""

    device_id: str
    seed: int
    session: Any = field(init=False)
    sensors: Sensors = field(init=False)
    interval_ms: int = 5000
    booted: int = field(default_factory=ticks_ms)
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # something to send
    retime: asyncio.Event = field(default_factory=asyncio.Event)  # the interval changed

    def __post_init__(self) -> None:
        self.boot()

    def boot(self) -> None:
        """A fresh start, as after a reset: RAM (ring, clock, seq) is gone."""
        ring_mod, session_mod = firmware.load("ring"), firmware.load("session")
        self.session = session_mod.Session(ring_mod.Ring(BUFFER, len(METRICS)), list(METRICS), WINDOW, BATCH)
        self.sensors = Sensors(random.Random(self.seed), phase=self.seed * 0.7)
        self.booted = ticks_ms()

    def obey(self, name: str, args: dict[str, Any]) -> tuple[bool, str]:
        """Answer a command as the board does (the firmware's rules.py); a new interval applies at once."""
        ok, detail, interval_ms = firmware.load("rules").answer(name, args)
        if interval_ms:
            self.interval_ms = interval_ms
            self.retime.set()
        return ok, detail


async def sample(device: VirtualDevice, stop: asyncio.Event) -> None:
    values = array("f", bytes(4 * len(METRICS)))
    while not stop.is_set():
        session = device.session
        now = ticks_ms()
        for k, v in enumerate(device.sensors.read(int(time.time() * 1000)).values()):
            values[k] = v
        # As on a board: stamped now if the clock is known, else at welcome from its ticks.
        stamp = session.stamp(now) if session.knows_time() else 0
        session.ring.push(now, stamp, values, (1 << len(METRICS)) - 1)
        device.wake.set()
        device.retime.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_either(stop, device.retime), device.interval_ms / 1000)


async def run_device(base: str, device_id: str, token: str, *, seed: int, stop: asyncio.Event) -> None:
    device = VirtualDevice(device_id, seed)
    sampler = asyncio.create_task(sample(device, stop))
    backoff = 1.0
    retry_hint_ms = firmware.load("session").retry_hint_ms  # the board's rule for the server's "come back later"
    try:
        while not stop.is_set():
            try:
                async with websockets.connect(
                    ws_url(base),
                    subprotocols=[codec.SUBPROTOCOL],  # type: ignore[list-item]
                    additional_headers={"Authorization": f"Bearer {token}"},
                    open_timeout=10,
                ) as ws:
                    backoff = 1.0
                    await _connection(ws, device, stop)
                hint_s = retry_hint_ms(ws.close_reason or "") / 1000
                if hint_s and not stop.is_set():
                    log.warning("simulated device told to wait", extra={"device": device_id, "in_s": hint_s})
                    await _either_or_timeout(stop, hint_s)
            except (TimeoutError, OSError, websockets.WebSocketException) as exc:
                if stop.is_set():
                    return
                hint_s = retry_hint_ms(_retry_after(exc)) / 1000
                wait = max(backoff * (0.5 + random.random()), hint_s)
                log.warning(
                    "simulated device reconnecting",
                    extra={"device": device_id, "error": str(exc)[:120], "in_s": round(wait, 1)},
                )
                await asyncio.sleep(wait)
                backoff = min(backoff * 2, 30.0)
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)


async def _connection(ws: ClientConnection, device: VirtualDevice, stop: asyncio.Event) -> None:
    session = device.session
    session_mod = firmware.load("session")
    buf = bytearray(FRAME_BYTES)
    session.connected()
    end = session.hello(buf, 0, "sim-0.1.0", ticks_ms() - device.booted)
    await ws.send(bytes(buf[:end]).decode())
    while session.handle(_utf8(await asyncio.wait_for(ws.recv(), 10)), ticks_ms()) != session_mod.WELCOME:
        pass
    if session.interval_ms and session.interval_ms != device.interval_ms:
        device.interval_ms = session.interval_ms
        device.retime.set()
    reboot = asyncio.Event()

    async def receive() -> None:
        async for raw in ws:
            kind = session.handle(_utf8(raw), ticks_ms())
            if kind in (session_mod.ACKED, session_mod.REJECTED):
                device.wake.set()
            elif kind == session_mod.COMMAND:
                ok, detail = device.obey(session.command_name, session.command_args)
                end = session.result(buf, 0, ok, detail)
                await ws.send(bytes(buf[:end]).decode())
                if ok and session.command_name == firmware.load("rules").REBOOT:
                    reboot.set()
                    device.wake.set()
                    return

    reader = asyncio.create_task(receive())
    try:
        while not stop.is_set() and not reader.done():
            device.wake.clear()
            while session.can_send():
                end = session.next_batch(buf, 0, len(buf))
                if end:
                    await ws.send(bytes(buf[:end]).decode())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(device.wake.wait(), 1.0)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    if reboot.is_set():
        log.info("simulated device rebooting", extra={"device": device.device_id})
        await ws.close(1001, "rebooting")
        device.boot()


async def _either(a: asyncio.Event, b: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def _either_or_timeout(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _retry_after(exc: Exception) -> str:
    """The Retry-After of a refused handshake ("" if none); a closed connection's reason says when too."""
    if isinstance(exc, websockets.InvalidStatus):
        return exc.response.headers.get("Retry-After", "")
    if isinstance(exc, websockets.ConnectionClosed) and exc.rcvd is not None:
        return exc.rcvd.reason
    return ""


def _utf8(raw: str | bytes) -> bytes:
    return raw.encode() if isinstance(raw, str) else raw


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
