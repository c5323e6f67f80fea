"""Readings across a reboot: the unmodified firmware on the simulated board, reset with the server away.

The board's filesystem survives its resets (SimBoard with reboot=True), as a board's flash does,
and its MCU temperature counts the readings taken across resets (1, 2, 3, ...), so "every reading
stored exactly once" is checkable against a real server: the stored values must be 1..N.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.firmware.test_on_micropython import stored, values
from tests.support.server import Server, start_server
from tests.support.simboard import board, firmware_config
from tests.support.waiting import wait_until

BUFFERED = 500
HOLD_MS = 1000  # journal_ms: offline, a reading reaches flash within this long


def test_a_board_reset_offline_with_500_readings_buffered_stores_each_once_after_reconnect(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # On SQLite only: what is under test is the board's journal; that the server stores a resent
    # batch once is tested on both backends in tests/storage (test_durability.py).
    server = start_server(tmp_path, "sqlite", request, sample_interval_ms="100")
    device_id, token = server.register()
    cfg = firmware_config(server.base, token, interval_ms=100, buffer=600, journal_ms=HOLD_MS)
    with board(config=cfg, reboot=True) as sim:
        sim.wait_for_line("link: online", timeout=30)
        wait_until(lambda: len(values(server, device_id)) >= 5, 20, "readings stored")

        since = sim.mark()
        server.stop()  # the server goes away; the board keeps sampling, into RAM and flash
        stored_before = sim.status()["readings"]  # at most these were stored (and acked) by now
        sim.wait_for_line("link: disconnected", 15, since)
        wait_until(lambda: sim.status()["readings"] >= stored_before + BUFFERED, 120, f"{BUFFERED} readings offline")
        sim.fail_sensor("mcu_temp")  # no reading from now on: what was taken is all there is
        time.sleep(3 * HOLD_MS / 1000)  # the journal's last page reaches flash
        taken = sim.status()["readings"]
        assert taken - stored_before >= BUFFERED

        since = sim.mark()
        sim.reset()  # the reset button, with the server still unreachable
        line = sim.wait_for_line("journal: ", 30, since)
        replayed = int(re.search(r"journal: (\d+) readings read back", line).group(1))  # type: ignore[union-attr]
        assert "(0 torn writes; 0 kept for other sensors, dropped)" in line
        print(f"readings kept across the reset: {replayed} ({taken - stored_before} taken offline)")
        assert taken - stored_before <= replayed <= 600  # the unacked, maybe a batch acked as the server went
        sim.wait_for_line("link: cannot connect", 15, since)  # still offline after the boot

        server = Server(
            tmp_path, server.database_url, server.settings, port=server.port, admin_key=server.admin_key
        ).start()
        request.addfinalizer(server.stop)
        sim.heal_sensor()
        sim.wait_for_line("link: online", 90, since)
        assert sim.status()["boots"] == 2
        wait_until(lambda: len(values(server, device_id)) >= taken + 5, 60, f"the {taken} readings and newer")

    got = values(server, device_id)
    assert got == list(range(1, len(got) + 1)), "a reading was lost or stored twice"
    stamps = [p["ts"] for p in stored(server, device_id)]
    assert stamps == sorted(set(stamps))  # one reading per timestamp, in the order taken
