"""A device-channel server that misbehaves on purpose, for the firmware's bad-input tests.

It speaks just enough HTTP and RFC 6455 to upgrade a connection, then runs a scenario: a
coroutine that gets the connection and decides what the "server" does (answer properly, send
garbage, stop talking, close). It records what each connection received, so tests can check
what the firmware sent and when it came back.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class Conn:
    """One device connection, after the upgrade."""

    number: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    received: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None

    async def recv(self) -> dict[str, Any] | None:
        """The next text message as JSON (pings answered, None once the device closes)."""
        while True:
            head = await self.reader.readexactly(2)
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", await self.reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", await self.reader.readexactly(8))[0]
            key = await self.reader.readexactly(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ key[i % 4] for i, b in enumerate(await self.reader.readexactly(length)))
            if opcode == 0x8:
                self.close_code = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else 1005
                return None
            if opcode == 0x9:
                self.send_frame(0xA, data)
            elif opcode == 0x1:
                msg = json.loads(data)
                self.received.append(msg)
                return dict(msg)

    def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        head += bytes([n]) if n < 126 else bytes([126]) + struct.pack(">H", n)
        self.writer.write(head + payload)

    def send(self, message: dict[str, Any]) -> None:
        self.send_frame(0x1, json.dumps(message).encode())

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def welcome(self, interval: int = 200) -> dict[str, Any] | None:
        hello = await self.recv()
        self.send({"type": "welcome", "time": int(time.time() * 1000), "interval": interval})
        return hello

    async def ack_everything(self) -> None:
        """Behave: ack each batch, until the device goes away."""
        while (msg := await self.recv()) is not None:
            if msg.get("type") == "telemetry":
                self.send({"type": "ack", "seq": msg["seq"]})


Scenario = Callable[[Conn], Awaitable[None]]


class FakeServer:
    """Runs in a thread with its own event loop; `scenarios[i]` handles connection i (the last repeats).

    `status` other than 101 answers every upgrade with that HTTP status instead; 0 never answers.
    `http_port`: a request that is not a WebSocket upgrade (a release file, say) is passed to the
    HTTP server on that port of 127.0.0.1, as the real server answers both on one port.
    """

    def __init__(self, scenarios: list[Scenario], *, status: int = 101, http_port: int = 0) -> None:
        self.scenarios = scenarios
        self.status = status
        self.http_port = http_port
        self.connections: list[Conn] = []
        self.attempts: list[float] = []  # monotonic time of each TCP connection
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def telemetry(self) -> list[dict[str, Any]]:
        return [m for c in self.connections for m in c.received if m.get("type") == "telemetry"]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.attempts.append(time.monotonic())
        with contextlib.suppress(Exception):
            head = await reader.readuntil(b"\r\n\r\n")
            if self.http_port and b"upgrade: websocket" not in head.lower():
                await _pass_on(head, reader, writer, self.http_port)
                return
            if not self.status:  # accepts TCP, reads the request, never answers
                await asyncio.sleep(3600)
            if self.status != 101:
                body = json.dumps({"detail": "unknown or revoked device token"}).encode()
                writer.write(b"HTTP/1.1 %d Refused\r\nContent-Length: %d\r\n\r\n%s" % (self.status, len(body), body))
                await writer.drain()
                writer.close()
                return
            fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line)
            accept = base64.b64encode(hashlib.sha1(fields["Sec-WebSocket-Key"].encode() + GUID).digest())
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: pulsewire.v1\r\n\r\n"
            )
            conn = Conn(len(self.connections), reader, writer)
            self.connections.append(conn)
            scenario = self.scenarios[min(conn.number, len(self.scenarios) - 1)]
            await scenario(conn)
        with contextlib.suppress(Exception):
            writer.close()


async def _pass_on(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
    """Relay one HTTP exchange to 127.0.0.1:port, both ways, until either side closes."""
    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
    up_writer.write(head)

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await src.read(4096):
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(Exception):
            dst.close()

    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def silent(conn: Conn) -> None:
    """Upgrade, then never say anything again."""
    await asyncio.sleep(3600)


async def well_behaved(conn: Conn) -> None:
    await conn.welcome()
    await conn.ack_everything()
