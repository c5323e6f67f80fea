"""A private PostgreSQL server of a test's own (initdb + pg_ctl in a temp folder, on a free port),
for outages: it can be stopped and started under a running Pulsewire server, which the machine's
shared PostgreSQL must never be.

PostgreSQL refuses to run as root: as root (CI), the cluster belongs to the `postgres` user that
Debian's package creates, and its commands run as that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.env import missing
from tests.support.server import free_port


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


@dataclass
class PrivatePostgres:
    """`initdb` once, then `start`/`stop` as often as a test likes; `destroy` removes it all."""

    port: int = field(default_factory=free_port)
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pulsewire-pg-")))
    _bin: Path = field(init=False)
    _user: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            missing("PostgreSQL's server programs (initdb, pg_ctl) are not installed", "tests/run installs postgresql")
        assert bin_dir is not None
        self._bin = bin_dir
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                missing("there is no postgres user to run a private PostgreSQL as", "tests/run installs postgresql")
            self._user = "postgres"
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of its `postgres` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            [str(self._bin / program), *args],
            user=self._user,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stdout}{done.stderr}")
        return done.stdout

    def start(self) -> PrivatePostgres:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.folder / "log"), "-o", options
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop it (`fast`: connections are ended; `immediate`: as if it crashed)."""
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-D", str(self.data), "-m", mode)

    def pids(self) -> list[int]:
        """The postmaster and every process it started (its backends and helpers)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        return [postmaster, *map(int, children)]

    def running(self) -> bool:
        done = subprocess.run(
            [str(self._bin / "pg_ctl"), "status", "-D", str(self.data)], user=self._user, capture_output=True
        )
        return done.returncode == 0

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL, started; removed after the test."""
    pg = PrivatePostgres()
    try:
        yield pg.start()
    finally:
        pg.destroy()
