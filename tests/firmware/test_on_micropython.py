"""The unmodified firmware (device/firmware) on real MicroPython, against a real server.

The simulated board (pulsewire_devkit.simboard) runs main.py as an ESP32 would, with real TCP. Its MCU
temperature is a count of the readings taken (1, 2, 3, ...), so "every reading stored exactly
once" is checkable: the stored values must be 1..N, without a gap or a repeat.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.env import ROOT
from tests.support.postgres import PrivatePostgres, private_postgres  # noqa: F401 (a fixture)
from tests.support.server import Server, start_server
from tests.support.simboard import board, firmware_config, require_node
from tests.support.waiting import wait_until

METRIC = "mcu_temperature"
HEAP_BENCH = ROOT / "bench" / "firmware_heap.py"


def stored(server: Server, device_id: str) -> list[dict[str, Any]]:
    resp = server.get(f"/api/devices/{device_id}/telemetry", params={"keys": METRIC, "order": "asc", "limit": 100000})
    if resp.status_code == 404 and "has no metric" in resp.text:
        return []  # nothing stored yet
    assert resp.status_code == 200, resp.text
    readings: list[dict[str, Any]] = resp.json().get(METRIC, [])
    return readings


def values(server: Server, device_id: str) -> list[int]:
    return [int(p["value"]) for p in stored(server, device_id)]


def test_every_reading_is_stored_once_across_a_network_cut_and_a_server_restart(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = start_server(tmp_path, backend, request, sample_interval_ms="200")
    device_id, token = server.register()
    with board(config=firmware_config(server.base, token, watchdog_ms=2000)) as sim:
        sim.wait_for_line("link: online", timeout=30)
        wait_until(lambda: len(values(server, device_id)) >= 5, 20, "readings queryable over HTTP")

        since = sim.mark()
        sim.cut()  # the board's connection is reset under it
        sim.wait_for_line("link: disconnected: link broke", 10, since)
        sim.wait_for_line("link: online", 30, since)
        before_restart = sim.status()["readings"]
        wait_until(lambda: len(values(server, device_id)) >= before_restart, 20, "readings sent after the cut")

        since = sim.mark()
        server.stop()  # and the server goes away while the board keeps sampling
        sim.wait_for_line("link: disconnected", 15, since)
        sim.wait_for_line("link: cannot connect", 15, since)
        server = Server(
            tmp_path, server.database_url, server.settings, port=server.port, admin_key=server.admin_key
        ).start()
        request.addfinalizer(server.stop)
        sim.wait_for_line("link: online", 60, since)

        status = sim.status()
        taken = status["readings"]
        assert taken > before_restart
        wait_until(lambda: len(values(server, device_id)) >= taken, 30, f"the {taken} readings taken")
        assert status["boots"] == 1 and status["wdt_feeds"] > 0  # the watchdog was fed throughout

    got = values(server, device_id)
    assert got == list(range(1, len(got) + 1)), "a reading was lost or stored twice"
    points = stored(server, device_id)
    assert [p["ts"] for p in points] == sorted({p["ts"] for p in points})  # one reading per timestamp
    assert "dropped" not in server.telemetry(device_id)  # the ring never overflowed


def test_readings_carry_the_time_they_were_taken(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Readings taken before the welcome are stamped from their own ticks: on MicroPython a long
    int from an array("q") fed to time.ticks_diff once stamped them minutes ahead."""
    server = start_server(tmp_path, "sqlite", request, sample_interval_ms="200")
    device_id, token = server.register()
    with board(config=firmware_config(server.base, token)) as sim:
        sim.wait_for_line("link: online", timeout=30)
        wait_until(lambda: len(values(server, device_id)) >= 8, 20, "8 readings stored")
    stamps = [p["ts"] for p in stored(server, device_id)]
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert all(100 <= gap <= 1000 for gap in gaps), f"readings 200 ms apart were stamped {gaps} ms apart"


def test_a_sensor_that_fails_is_reported_and_the_readings_go_on_when_it_heals(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = start_server(tmp_path, "sqlite", request, sample_interval_ms="200")
    device_id, token = server.register()
    with board(config=firmware_config(server.base, token)) as sim:
        sim.wait_for_line("link: online", timeout=30)
        since = sim.mark()
        sim.fail_sensor("mcu_temp")
        sim.wait_for_line("sensors: sensor 0 failed to read", 10, since)
        sim.heal_sensor()
        taken = sim.status()["readings"]
        wait_until(lambda: len(values(server, device_id)) >= taken + 3, 20, "readings after the sensor healed")
    got = values(server, device_id)
    assert got == list(range(1, len(got) + 1))  # failed reads took no reading and left no hole


def test_a_refused_token_is_reported_and_nothing_is_stored(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    server = start_server(tmp_path, "sqlite", request)
    device_id, _ = server.register()
    with board(config=firmware_config(server.base, "pwd_not-a-token")) as sim:
        line = sim.wait_for_line("link: token refused", timeout=30)
    assert "check the token" in line
    assert server.telemetry(device_id) == {}


def test_closed_for_storage_trouble_the_board_waits_as_long_as_the_server_asks(
    private_postgres: PrivatePostgres,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    pg = private_postgres
    retry = {"storage_retry_s": "4", "storage_retry_max_s": "6"}
    server = Server(tmp_path, database_url=pg.url, settings={"sample_interval_ms": "200", **retry}).start()
    request.addfinalizer(server.stop)
    device_id, token = server.register()
    with board(config=firmware_config(server.base, token)) as sim:
        sim.wait_for_line("link: online", timeout=30)
        since = sim.mark()
        pg.stop()
        closed = sim.wait_for_line("link: disconnected: server closed (1013 storage unavailable; retry in", 15, since)
        hint = int(re.search(r"retry in (\d+) s", closed).group(1))  # type: ignore[union-attr]
        waits = sim.wait_for_line("link: the server asked to wait; next try in", 5, since)
        told_at = time.monotonic()
        assert int(re.search(r"next try in (\d+) s", waits).group(1)) >= hint >= 2  # type: ignore[union-attr]
        # The next try is refused with 503 and Retry-After (the token cannot be checked): waited for too.
        sim.wait_for_line("link: handshake failed: HTTP 503", hint + 10, since)
        assert time.monotonic() - told_at >= hint - 0.25
        since = sim.mark()
        again = sim.wait_for_line("link: the server asked to wait; next try in", 5, since)
        told_at = time.monotonic()
        wait_s = int(re.search(r"next try in (\d+) s", again).group(1))  # type: ignore[union-attr]
        pg.start()
        sim.wait_for_line("link: online", wait_s + 30, since)
        assert time.monotonic() - told_at >= wait_s - 0.25
        taken = sim.status()["readings"]
        wait_until(lambda: len(values(server, device_id)) >= taken, 30, f"the {taken} readings taken")
    got = values(server, device_id)
    assert got == list(range(1, len(got) + 1)), "a reading was lost or stored twice"


def test_the_heap_benchmark_reports_its_figures() -> None:
    """bench/firmware_heap.py runs end to end (figures for a person to read; no bound asserted)."""
    require_node()
    command = [sys.executable, str(HEAP_BENCH), "--seconds", "1", "--samples", "2", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout)
    print("firmware heap:", report)
    assert 0 < report["baseline_alloc"] < report["simulation_alloc"] < report["code_alloc"]
    assert report["code_alloc"] < report["firmware_alloc_median"] and report["readings_stored"] > 0
