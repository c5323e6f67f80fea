"""Every long-running command stops cleanly on SIGINT and on SIGTERM, also when started in the
background of a script (`cmd &`), where the shell starts it with SIGINT ignored."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import Server, free_port, start_server
from tests.support.simboard import require_node
from tests.support.waiting import wait_until

STOP_WITHIN_S = 15


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Server:
    return start_server(tmp_path_factory.mktemp("signals"), "sqlite", request, sample_interval_ms="200")


def _as_in_background() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what `&` does in a non-interactive shell


@pytest.fixture
def started(tmp_path: Path) -> Iterator[object]:
    """Start `pulsewire ARGS` as a script's `&` would; whatever still runs at the end is killed."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        log = (tmp_path / f"out-{len(procs)}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "pulsewire", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_as_in_background,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _stops(proc: subprocess.Popen[str], sig: signal.Signals) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {STOP_WITHIN_S} s after {sig.name}")


def _readings(server: Server, device_id: str) -> int:
    resp = server.get(f"/api/devices/{device_id}/telemetry", params={"keys": "temperature"})
    return len(resp.json().get("temperature", [])) if resp.status_code == 200 else 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_simulate_stops(server: Server, started: object, sig: signal.Signals) -> None:
    prefix = f"sig{sig.value}"
    proc = started(  # type: ignore[operator]
        "simulate", "1", "--prefix", prefix, "--server", server.base, "--admin-key", server.admin_key
    )
    wait_until(lambda: _readings(server, f"{prefix}-1"), 20, "the simulated device sends readings")
    assert _stops(proc, sig) == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_serve_stops(tmp_path: Path, started: object, sig: signal.Signals) -> None:
    port = free_port()
    proc = started("serve", "--port", str(port), "--data-dir", str(tmp_path / "data"))  # type: ignore[operator]
    wait_until(lambda: Server(tmp_path, port=port).healthy(), 30, "the server answers")
    # SIGINT ends in a KeyboardInterrupt caught by the command; SIGTERM, after the same shutdown,
    # by the signal itself (uvicorn raises it again), as a service manager expects.
    assert _stops(proc, sig) in (0, -signal.SIGTERM)
    said = (tmp_path / "out-0.log").read_text()
    assert "pulsewire stopped" in said
    assert "add a device:       pulsewire device add greenhouse-1 --server" in said  # the banner's next steps


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_board_sim_stops(tmp_path: Path, started: object, sig: signal.Signals) -> None:
    require_node()
    proc = started("board-sim", "--fs", str(tmp_path / "fs"))  # type: ignore[operator]
    log = tmp_path / "out-0.log"
    wait_until(lambda: "listening on socket://" in log.read_text(), 30, "the simulated board listens")
    assert _stops(proc, sig) == 0
    assert f"stopped ({sig.name})" in log.read_text()
