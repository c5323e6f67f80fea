"""A private Redis server of a test's own (redis-server on a free port, nothing saved to disk), for
outages: it can be killed and started again on the same port under a running bus, which the
machine's shared Redis must never be."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.env import missing
from tests.support.server import free_port
from tests.support.waiting import wait_until


def _binary() -> str | None:
    return shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)


@dataclass
class PrivateRedis:
    port: int = field(default_factory=free_port)
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pulsewire-redis-")))
    _process: subprocess.Popen[bytes] | None = field(init=False, default=None)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> None:
        binary = _binary()
        if binary is None:
            missing("redis-server is not installed", "tests/run installs redis-server")
        assert binary is not None
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(
            [*args, "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(self._answers, 10, f"redis-server on port {self.port} answering PING")

    def kill(self) -> None:
        """Gone at once, as a crash or a power cut: no goodbye to its clients."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def flush(self) -> None:
        with self.client() as c:
            c.flushall()

    def destroy(self) -> None:
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _answers(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError(f"redis-server exited with {self._process.returncode}")
        try:
            with self.client() as c:
                return bool(c.ping())
        except redis.ConnectionError:
            return False
