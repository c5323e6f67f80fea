"""`pulsewire serve --workers N`: real supervisors with real worker processes on the real PostgreSQL.

Which worker holds a connection is read from /proc, as an operator would find it: the worker's
socket descriptors (/proc/<pid>/fd) against the kernel's table of TCP connections (/proc/net/tcp).
The workers' pids come from the `worker started` line each one logs.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import proctime
from pulsewire.app.workers import MAX_BACKOFF_S, STABLE_AFTER_S, Slot, restart_delay
from tests.support.cli import cli
from tests.support.clients import device, now_ms, send_batch
from tests.support.redisserver import PrivateRedis
from tests.support.server import Server, free_port
from tests.support.waiting import wait_until

REDIS_URL = "redis://127.0.0.1:6379/15"  # for the refusals: never connected to
WORKER_STARTED = re.compile(r'"worker started" worker=(\d+) pid=(\d+)')


def start_workers(tmp: Path, request: pytest.FixtureRequest, *flags: str) -> Server:
    """Two workers on a fresh database, joined through a Redis of their own (so that no other test's
    instances share their bus)."""
    database_url = request.getfixturevalue("postgres_database")()
    redis = PrivateRedis()
    redis.start()
    request.addfinalizer(redis.destroy)
    server = Server(tmp, database_url=database_url, flags=["--workers", "2", "--redis-url", redis.url, *flags])
    server.settings["sample_interval_ms"] = "200"
    request.addfinalizer(server.stop)
    server.start()
    wait_until(lambda: len(started(server)) >= 2, 20, "both workers log their start")
    return server


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Server:
    return start_workers(tmp_path_factory.mktemp("workers"), request, "--simulate", "1")


def started(server: Server) -> list[tuple[int, int]]:
    """(worker number, pid) of every worker start this run logged, in order."""
    return [(int(m[1]), int(m[2])) for line in server.log_lines() if (m := WORKER_STARTED.search(line))]


def running_workers(server: Server) -> dict[int, int]:
    """{worker number: pid} of the workers that run now (children of the supervisor)."""
    alive = set(proctime.children(server.pid))
    return {number: pid for number, pid in started(server) if pid in alive}


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # a descriptor may close while it is read
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def holder(server: Server, client_port: int, pids: list[int]) -> int | None:
    """The pid among `pids` that holds the server's end of the connection from `client_port`."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if int(local.split(":")[1], 16) == server.port and int(remote.split(":")[1], 16) == client_port:
            return next((pid for pid in pids if inode in socket_inodes(pid)), None)
    return None


def answered_connection(server: Server) -> socket.socket:
    """A kept-alive HTTP connection that a worker has accepted and answered."""
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert conn.recv(4096).startswith(b"HTTP/1.1 200"), "the port answers"
    return conn


def temperatures(server: Server, device_id: str, since: int = 0) -> list[object]:
    """The device's temperatures stored since `since` (ms); none while it is not registered yet."""
    resp = server.get(f"/api/devices/{device_id}/telemetry", params={"keys": "temperature", "start": since})
    return resp.json()["temperature"] if resp.status_code == 200 else []  # type: ignore[no-any-return]


@pytest.fixture
def connections() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for conn in opened:
        conn.close()


# --- the restart policy ---------------------------------------------------------------------------


def test_a_worker_that_keeps_dying_at_start_waits_longer_each_time_up_to_30_s() -> None:
    assert [restart_delay(n) for n in range(0, 8)] == [0, 1, 2, 4, 8, 16, MAX_BACKOFF_S, MAX_BACKOFF_S]
    slot = Slot(1, started_at=100.0)
    assert slot.died(101.0) == 1  # died a second after its start
    slot.started_at = 102.0
    assert slot.died(103.0) == 2
    slot.started_at = 105.0
    assert slot.died(105.0 + STABLE_AFTER_S) == 0  # it ran long: started again at once, the count reset
    assert slot.quick_deaths == 0 and slot.due == 105.0 + STABLE_AFTER_S


# --- running workers ------------------------------------------------------------------------------


@pytest.mark.postgres
def test_workers_share_one_port_and_connections_land_on_both(workers: Server, connections: list[socket.socket]) -> None:
    pids = running_workers(workers)
    assert sorted(pids) == [1, 2], started(workers)
    holders = set()
    for _ in range(60):  # the kernel wakes every worker; which one accepts first is up to the scheduler
        conn = answered_connection(workers)
        connections.append(conn)
        holders.add(holder(workers, conn.getsockname()[1], list(pids.values())))
        if holders >= set(pids.values()):
            break
        time.sleep(0.02)
    assert holders == set(pids.values()), f"connections landed on {holders} of {pids}"


@pytest.mark.postgres
@pytest.mark.anyio
async def test_readings_of_devices_on_every_worker_are_acked_and_stored(workers: Server) -> None:
    devices = [workers.register() for _ in range(6)]
    ts = now_ms()
    for n, (_, token) in enumerate(devices):
        async with device(workers, token) as ws:
            answer = await send_batch(ws, 1, [{"ts": ts, "values": {"temperature": 20.0 + n}}])
            assert answer == {"type": "ack", "seq": 1}
    for n, (device_id, _) in enumerate(devices):
        stored = workers.telemetry(device_id, keys="temperature")["temperature"]
        assert [point["value"] for point in stored] == [20.0 + n]


@pytest.mark.postgres
def test_simulated_devices_and_the_banner_run_once(workers: Server) -> None:
    wait_until(lambda: temperatures(workers, "sim-1"), 20, "sim-1 sends")
    simulated = [d["id"] for d in workers.get("/api/devices").json() if d["id"].startswith("sim-")]
    assert simulated == ["sim-1"]
    assert (workers.data_dir / "server.out").read_text().count("Dashboard:") == 1


@pytest.mark.postgres
def test_a_killed_worker_is_started_again_and_the_port_keeps_answering(workers: Server) -> None:
    before = running_workers(workers)
    os.kill(before[1], signal.SIGKILL)
    for _ in range(10):  # worker 2 serves meanwhile
        assert workers.healthy()
    after = wait_until(
        lambda: (now := running_workers(workers)) and sorted(now) == [1, 2] and now[1] != before[1] and now,
        20,
        "worker 1 runs again under a new pid",
    )
    assert after[2] == before[2]
    assert any(
        "worker exited; starting it again" in line and f"pid={before[1]} exit_code=-9 signal=SIGKILL" in line
        for line in workers.log_lines()
    ), workers.log_tail()
    wait_until(lambda: f"pid={after[1]}" in workers.log_text() and workers.healthy(), 10, "the new worker serves")
    # The banner is not printed again; the simulated device, which ran in worker 1, comes back.
    assert (workers.data_dir / "server.out").read_text().count("Dashboard:") == 1
    since = now_ms()
    wait_until(lambda: temperatures(workers, "sim-1", since), 20, "sim-1 is back")


@pytest.mark.postgres
def test_sigterm_stops_every_worker_and_the_supervisor_exits_0(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    server = start_workers(tmp_path, request)
    pids = set(running_workers(server).values())
    assert len(pids) == 2
    assert server.proc is not None
    began = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(15) == 0
    assert time.monotonic() - began < 8, "stopped promptly"
    assert not [pid for pid in pids if alive(pid)], "every worker is gone"
    assert server.log_text().count('"pulsewire stopped"') == 2, "each worker stopped gracefully"
    assert not server.healthy()


def alive(pid: int) -> bool:
    """Running (a zombie no reaper has collected yet counts as gone)."""
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


@pytest.mark.postgres
def test_workers_stop_by_themselves_when_the_supervisor_is_killed(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = start_workers(tmp_path, request)
    pids = set(running_workers(server).values())
    os.kill(server.pid, signal.SIGKILL)
    wait_until(lambda: not any(alive(pid) for pid in pids), 15, "the orphaned workers stop")
    assert server.log_text().count("the supervisor is gone; stopping") == 2
    assert server.log_text().count('"pulsewire stopped"') == 2, "each stopped gracefully"


# --- refusals -------------------------------------------------------------------------------------


POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/pulsewire_never_opened"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--redis-url", REDIS_URL], "redis_url needs PostgreSQL: SQLite is one file that one process writes"),
        (["--workers", "2"], "workers (2) needs PostgreSQL: each worker has its own writer"),
        (
            ["--workers", "3", "--database-url", POSTGRES_URL],
            "workers (3) needs redis_url: each worker holds its own device and dashboard connections, and without "
            "Redis between them a dashboard on one worker would not see the devices on another",
        ),
        (["--workers", "65"], "workers: Input should be less than or equal to 64"),
        (["--redis-url", "http://127.0.0.1:6379"], "redis_url: only redis://, rediss:// and unix:// URLs"),
    ],
)
def test_serve_refuses_workers_and_redis_without_what_they_need(tmp_path: Path, flags: list[str], message: str) -> None:
    done = cli("serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "d"), *flags, timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Error: bad setting: " in done.stderr and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_serve_help_shows_workers_and_redis_url() -> None:
    done = cli("serve", "--help", timeout=30)
    assert done.returncode == 0
    assert "--workers INTEGER" in done.stdout and "PULSEWIRE_WORKERS" in done.stdout
    assert "--redis-url TEXT" in done.stdout


@pytest.mark.postgres
def test_a_database_the_supervisor_cannot_open_ends_it_with_3_before_any_worker(
    tmp_path: Path, postgres_available: None
) -> None:
    missing_database = POSTGRES_URL.replace("never_opened", "missing_" + os.urandom(4).hex())
    flags = ["--workers", "2", "--redis-url", REDIS_URL, "--database-url", missing_database]
    done = cli("serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "d"), *flags, timeout=30)
    assert done.returncode == 3, done.stderr
    assert "cannot open the database; no worker started" in done.stderr
    assert '"worker started"' not in done.stderr
