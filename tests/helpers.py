"""Test utilities: a real Pulsewire server in a subprocess, and device / live clients for it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets
from websockets.asyncio.client import ClientConnection

SUBPROTOCOL = "pulsewire.v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """`pulsewire serve` started for real on a free port, with its own data folder."""

    data_dir: Path
    database_url: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    port: int = 0
    admin_key: str = field(default_factory=lambda: "pwa_test_" + secrets.token_hex(8))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEWIRE_")}
        env.update(
            PULSEWIRE_HOST="127.0.0.1",
            PULSEWIRE_PORT=str(self.port),
            PULSEWIRE_DATA_DIR=str(self.data_dir),
            PULSEWIRE_ADMIN_KEY=self.admin_key,
            PULSEWIRE_LOG_LEVEL="info",
        )
        if self.database_url:
            env["PULSEWIRE_DATABASE_URL"] = self.database_url
        env.update({f"PULSEWIRE_{k.upper()}": v for k, v in self.settings.items()})
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pulsewire", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 30) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start in {timeout} s:\n{self.log_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    # HTTP

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.base + path, timeout=10, **kw)

    def register(self, device_id: str | None = None, name: str | None = None) -> tuple[str, str]:
        device_id = device_id or "dev-" + secrets.token_hex(4)
        body: dict[str, str] = {"id": device_id}
        if name:
            body["name"] = name
        resp = httpx.post(self.base + "/api/devices", json=body, headers=self.admin(), timeout=10)
        assert resp.status_code == 201, resp.text
        return device_id, resp.json()["token"]

    def telemetry(self, device_id: str, **params: Any) -> dict[str, list[dict[str, Any]]]:
        resp = self.get(f"/api/devices/{device_id}/telemetry", params=params)
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def metric_value(self, name: str, labels: str = "") -> float:
        """A sample's value from /metrics (`labels` like 'code="invalid"')."""
        wanted = f"{name}{{{labels}}}" if labels else name
        for line in self.get("/metrics").text.splitlines():
            if line.startswith(wanted + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@contextlib.asynccontextmanager
async def device(server: Server, token: str, *, hello: bool = True) -> AsyncIterator[ClientConnection]:
    async with websockets.connect(
        server.ws_base + "/ws/device",
        subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=10,
        ping_interval=None,
    ) as ws:
        if hello:
            await ws.send(dumps({"type": "hello", "fw": "test-1.0", "uptime": 1}))
            welcome = await recv_json(ws)
            assert welcome["type"] == "welcome", welcome
        yield ws


@contextlib.asynccontextmanager
async def live(server: Server, query: str = "") -> AsyncIterator[ClientConnection]:
    async with websockets.connect(server.ws_base + "/ws/live" + query, open_timeout=10, max_size=None) as ws:
        yield ws


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


@contextlib.contextmanager
def sqlite_write_lock(db: Path) -> Iterator[None]:
    """Hold SQLite's write lock from outside the server, as an sqlite3 shell in the middle of a write would."""
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("COMMIT")
        other.close()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run `pulsewire ARGS...` with a clean environment (no PULSEWIRE_* of the caller's)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PULSEWIRE_")}
    return subprocess.run(
        [sys.executable, "-m", "pulsewire", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**clean, **(env or {})},
    )
