"""A real Pulsewire server in a subprocess, on a free port with its own data folder.

This is the one runner of `pulsewire serve` for the tests and the benchmarks. It lives here, with
the tests, because they are its main user: hundreds of them import it as `tests.support.server`,
with the repository root already on sys.path under pytest. The benchmarks are run from a checkout
(`python bench/ingest.py`), so bench/harness/server.py puts the repository root on sys.path and
imports it from here; the other way round, the tests would import from bench/, a folder of
scripts rather than a package. pytest is imported for type annotations only, so a benchmark
needs nothing the tests alone use.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import pytest

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
STACK_DUMP_TIMEOUT_S = 5.0
LOG_TAIL_LINES = 40


class ServerError(RuntimeError):
    """The server did not start, exited, or refused what the runner asked of it; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """`pulsewire serve` started for real on a free port, with its own data folder.

    `settings` become PULSEWIRE_<NAME> environment variables and `flags` extra command-line flags;
    PULSEWIRE_* variables of the caller's are not passed on, so only these and the server's
    defaults apply. The server's log (its stderr) goes to <data_dir>/server.log, what it prints
    for a person (its start-up banner, on stdout) to <data_dir>/server.out.
    """

    data_dir: Path
    database_url: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    port: int = 0
    admin_key: str = field(default_factory=lambda: "pwa_test_" + secrets.token_hex(8))
    proc: subprocess.Popen[Any] | None = None
    flags: list[str] = field(default_factory=list)
    log_level: str = "info"
    ca: Path | None = None  # serving TLS (tls_cert/tls_key in settings): the certificate clients verify it with
    # Runs the server under a command, e.g. ["prlimit", "--nofile=1024:1024", "--"] for a lower open-file limit.
    command_prefix: list[str] = field(default_factory=list)
    _log_start: int = field(default=0, init=False, repr=False)  # server.log's size when this run started

    @property
    def base(self) -> str:
        return f"{'https' if self.ca else 'http'}://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"{'wss' if self.ca else 'ws'}://127.0.0.1:{self.port}"

    @functools.cached_property
    def verify(self) -> ssl.SSLContext | bool:
        """What HTTP clients verify the server with: its own certificate when it serves TLS."""
        return ssl.create_default_context(cafile=self.ca) if self.ca else True

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the server was not started"
        return self.proc.pid

    # Process

    def start(self, timeout: float = START_TIMEOUT_S) -> Server:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # as the server makes it: no open-files warning
        self.port = self.port or free_port()
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        command = [*self.command_prefix, sys.executable, "-m", "pulsewire", "serve", *self.flags]
        # Appended to, not replaced: a test that restarts a server on the same folder reads both runs.
        # The child keeps its own copies of the descriptors.
        with open(self.log_path, "ab") as log, open(self.data_dir / "server.out", "ab") as out:
            self.proc = subprocess.Popen(command, env=self._environment(), stdout=out, stderr=log)
        self.wait_healthy(timeout)
        return self

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEWIRE_")}
        env.update(
            PULSEWIRE_HOST="127.0.0.1",
            PULSEWIRE_PORT=str(self.port),
            PULSEWIRE_DATA_DIR=str(self.data_dir),
            PULSEWIRE_ADMIN_KEY=self.admin_key,
            PULSEWIRE_LOG_LEVEL=self.log_level,
            PYTHONFAULTHANDLER="1",  # lets a server that hangs at start show its stacks (_dump_stacks)
        )
        if self.database_url:
            env["PULSEWIRE_DATABASE_URL"] = self.database_url
        env.update({f"PULSEWIRE_{k.upper()}": v for k, v in self.settings.items()})
        return env

    def healthy(self) -> bool:
        """Does it answer /healthz with 200 now?"""
        try:
            return httpx.get(self.base + "/healthz", timeout=1, verify=self.verify).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_healthy(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until /healthz answers 200; a server that exits or hangs instead is reported with its log."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        last = "no attempt"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"server exited with {self.proc.returncode} at start:\n{self.log_tail()}")
            try:
                resp = httpx.get(self.base + "/healthz", timeout=1, verify=self.verify)
                if resp.status_code == 200:
                    return
                last = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)
        listening = self._listening()
        self._dump_stacks()
        self.stop()
        raise ServerError(
            f"server did not answer /healthz within {timeout:g} s (last attempt: {last}; port {self.port} "
            f"listening: {listening}); its stacks (from SIGABRT) and log:\n{self.log_tail(200)}"
        )

    def _listening(self) -> str:
        try:
            import psutil
        except ImportError:
            return "unknown (psutil is not installed)"
        try:
            conns = psutil.Process(self.pid).net_connections(kind="tcp")
        except psutil.Error as exc:
            return f"unknown ({type(exc).__name__})"
        return "yes" if any(c.status == psutil.CONN_LISTEN and c.laddr.port == self.port for c in conns) else "no"

    def _dump_stacks(self) -> None:
        """SIGABRT a stuck server: its faulthandler (PYTHONFAULTHANDLER=1) logs every thread's stack."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(STACK_DUMP_TIMEOUT_S)

    def crashed(self) -> int | None:
        """The exit code if the server is gone, else None."""
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> str:
        """SIGINT, then SIGKILL after a timeout; says how it went."""
        if self.proc is None:
            return "not started"
        if self.proc.poll() is not None:
            return f"had already exited with {self.proc.returncode}"
        self.proc.send_signal(signal.SIGINT)
        try:
            return f"stopped on SIGINT (exit {self.proc.wait(STOP_TIMEOUT_S)})"
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return f"did not stop within {STOP_TIMEOUT_S:g} s of SIGINT; killed"

    # Log

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def log_text(self) -> str:
        """Everything in server.log, from every run on this data folder."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[str]:
        """The lines this run logged (at `log_level` and up), blank lines left out."""
        if not self.log_path.exists():
            return []
        with open(self.log_path, "rb") as log:
            log.seek(self._log_start)
            text = log.read().decode(errors="replace")
        return [line for line in text.splitlines() if line.strip()]

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log_lines()[-lines:])

    # HTTP

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.base + path, timeout=10, verify=self.verify, **kw)

    def register(self, device_id: str | None = None, name: str | None = None) -> tuple[str, str]:
        device_id = device_id or "dev-" + secrets.token_hex(4)
        body: dict[str, str] = {"id": device_id}
        if name:
            body["name"] = name
        resp = httpx.post(self.base + "/api/devices", json=body, headers=self.admin(), timeout=10, verify=self.verify)
        assert resp.status_code == 201, resp.text
        return device_id, resp.json()["token"]

    def register_many(self, device_ids: list[str]) -> list[str]:
        """Register the devices over one connection (there is no bulk call); their tokens, in the same order."""
        tokens = []
        with httpx.Client(base_url=self.base, headers=self.admin(), timeout=30, verify=self.verify) as client:
            for device_id in device_ids:
                resp = client.post("/api/devices", json={"id": device_id})
                if resp.status_code != 201:
                    raise ServerError(f"registering {device_id}: HTTP {resp.status_code} {resp.text[:300]}")
                tokens.append(resp.json()["token"])
        return tokens

    def remove(self, device_ids: list[str]) -> list[str]:
        """Remove the devices with their readings, best effort; the ids that could not be removed."""
        failed = []
        with httpx.Client(base_url=self.base, headers=self.admin(), timeout=120, verify=self.verify) as client:
            for device_id in device_ids:
                try:
                    resp = client.delete(f"/api/devices/{device_id}", params={"purge": "true"})
                    ok = resp.status_code in (200, 404)
                except httpx.HTTPError:
                    ok = False
                if not ok:
                    failed.append(device_id)
        return failed

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

    def metrics(self) -> dict[str, float]:
        """Every sample from /metrics with its labels summed away, histogram buckets left out: {name: value}."""
        resp = self.get("/metrics")
        resp.raise_for_status()
        samples: dict[str, float] = {}
        for line in resp.text.splitlines():
            if line and not line.startswith("#"):
                name_labels, value = line.rsplit(" ", 1)
                name = name_labels.split("{", 1)[0]
                if not name.endswith("_bucket"):
                    samples[name] = samples.get(name, 0.0) + float(value)
        return samples


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
