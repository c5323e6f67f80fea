"""Device-channel and live-channel clients for a test server, and the JSON they speak."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from pulsewire.protocol.device import SUBPROTOCOL
from tests.support.server import Server


@contextlib.asynccontextmanager
async def device(server: Server, token: str, *, hello: bool = True) -> AsyncIterator[ClientConnection]:
    async with websockets.connect(
        server.ws_base + "/ws/device",
        subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=10,
        ping_interval=None,
        **_tls(server),
    ) as ws:
        if hello:
            await ws.send(dumps({"type": "hello", "fw": "test-1.0", "uptime": 1}))
            welcome = await recv_json(ws)
            assert welcome["type"] == "welcome", welcome
        yield ws


@contextlib.asynccontextmanager
async def live(server: Server, query: str = "") -> AsyncIterator[ClientConnection]:
    async with websockets.connect(
        server.ws_base + "/ws/live" + query, open_timeout=10, max_size=None, **_tls(server)
    ) as ws:
        yield ws


def _tls(server: Server) -> dict[str, Any]:
    """A server serving TLS is verified against its own certificate."""
    return {"ssl": server.verify} if server.ca else {}


def dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


async def recv_json(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))  # type: ignore[no-any-return]


async def send_batch(ws: ClientConnection, seq: int, data: list[dict[str, Any]]) -> dict[str, Any]:
    """Send one telemetry batch and return the server's answer (ack or error)."""
    await ws.send(dumps({"type": "telemetry", "seq": seq, "data": data}))
    return await recv_json(ws)


async def live_until(ws: ClientConnection, predicate: Any, timeout: float = 5) -> dict[str, Any]:
    """Read live messages until one satisfies `predicate`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise AssertionError("expected live message did not arrive")
        msg = await recv_json(ws, left)
        if predicate(msg):
            return msg


def now_ms() -> int:
    return time.time_ns() // 1_000_000
