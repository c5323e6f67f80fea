"""A real Pulsewire server in a subprocess, on a free port with its own data folder."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest


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

    def healthy(self) -> bool:
        """Does it answer /healthz with 200 now?"""
        try:
            return httpx.get(self.base + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

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


def database_url_for(backend: str, request: pytest.FixtureRequest) -> str | None:
    """None for SQLite (the server's default, in its data folder), else a fresh PostgreSQL database."""
    if backend == "sqlite":
        return None
    return request.getfixturevalue("postgres_database")()  # type: ignore[no-any-return]


def start_server(tmp: Path, backend: str, request: pytest.FixtureRequest, **settings: str) -> Server:
    """A server on `backend`, stopped when the test (or fixture) that asked for it ends."""
    server = Server(tmp, database_url=database_url_for(backend, request), settings=settings).start()
    request.addfinalizer(server.stop)
    return server
