"""Rollouts end to end: the unmodified firmware on the simulated board against the real server.

Releases are made as an operator makes them (`pulsewire release build --source ... --version ...`,
then `pulsewire release upload`), rollouts started over HTTP. The board takes the server's `update`
command, fetches each file with its own token from the server's file route (Range and all),
restarts on trial, and its hellos move the rollout; nothing in between is a stand-in.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pulsewire_devkit.simboard.runner import SimBoard
from tests.support.cli import cli
from tests.support.server import Server, start_server
from tests.support.simboard import FIRMWARE, board, firmware_config
from tests.support.waiting import wait_until

BASE_FW = "0.1.0"
TRIAL_MS = 4000  # each boot of a new version has this long to get its welcome
BROKEN = "ImportError: no module named 'pulsewire_no_such_module'"


def release(server: Server, tmp: Path, version: str, source: Path = FIRMWARE) -> None:
    """Build release `version` from the firmware in `source` and upload it, with the CLI."""
    bundle = tmp / f"pulsewire-{version}.tar"
    built = cli("release", "build", "--source", str(source), "--version", version, "--out", str(bundle))
    assert built.returncode == 0, built.stderr
    sent = cli("release", "upload", str(bundle), "--server", server.base, "--admin-key", server.admin_key)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith(f"stored release {version}:"), sent.stdout


def broken_firmware(tmp: Path) -> Path:
    """A copy of device/firmware whose session module raises at import."""
    folder = tmp / "firmware-broken"
    shutil.copytree(FIRMWARE, folder)
    session = folder / "session.py"
    session.write_text("import pulsewire_no_such_module  # noqa\n" + session.read_text())
    return folder


def unreachable_firmware(tmp: Path) -> Path:
    """A copy of device/firmware that imports and runs but never reaches the server: it asks for a
    WebSocket subprotocol the server does not speak, so every handshake is refused."""
    folder = tmp / "firmware-unreachable"
    shutil.copytree(FIRMWARE, folder)
    link = folder / "link.py"
    source = link.read_text()
    assert 'SUBPROTOCOL = "pulsewire.v1"' in source
    link.write_text(source.replace('SUBPROTOCOL = "pulsewire.v1"', 'SUBPROTOCOL = "pulsewire.v0"'))
    return folder


def start_rollout(server: Server, version: str, devices: list[str], canary_percent: int = 0) -> str:
    body = {"version": version, "devices": devices, "canary_percent": canary_percent}
    resp = httpx.post(server.base + "/api/rollouts", json=body, headers=server.admin(), timeout=30)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def rollout(server: Server, rollout_id: str) -> dict[str, Any]:
    resp = server.get(f"/api/rollouts/{rollout_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def step_of(server: Server, rollout_id: str, device_id: str) -> dict[str, Any]:
    return next(d for d in rollout(server, rollout_id)["devices"] if d["device"] == device_id)


def wait_step(server: Server, rollout_id: str, device_id: str, step: str, timeout: float = 60) -> dict[str, Any]:
    wait_until(lambda: step_of(server, rollout_id, device_id)["step"] == step, timeout, f"{device_id} {step}")
    return step_of(server, rollout_id, device_id)


def firmware_of(server: Server) -> dict[str, str | None]:
    resp = server.get("/api/devices", headers=server.admin())
    assert resp.status_code == 200, resp.text
    return {d["id"]: d.get("fw") for d in resp.json()}


def readings(server: Server, device_id: str) -> int:
    return sum(len(points) for points in server.telemetry(device_id, limit=10000).values())


def steps_logged(server: Server, rollout_id: str, device_id: str) -> list[str]:
    """Every step the server recorded for the device in the rollout, in order (its log)."""
    found = re.compile(rf'"rollout step" rollout={rollout_id} device={device_id} step=(\w+)')
    return [m.group(1) for line in server.log_lines() if (m := found.search(line))]


def streams_on(server: Server, device_id: str, more: int = 10) -> None:
    """The board's readings keep being stored: `more` beyond those stored now."""
    now = readings(server, device_id)
    wait_until(lambda: readings(server, device_id) >= now + more, 30, f"{more} more readings stored")


def on_v2(server: Server, sim: SimBoard, tmp: Path, device_id: str) -> str:
    """Take the board from 0.1.0 to 0.2.0 with a rollout; its id, once the board has confirmed."""
    sim.wait_for_line("link: online", 30)
    release(server, tmp, "0.2.0")
    rollout_id = start_rollout(server, "0.2.0", [device_id])
    since = sim.mark()
    sim.wait_for_line("boot: 0.2.0 confirmed", 90, since)
    wait_step(server, rollout_id, device_id, "confirmed", 30)
    return rollout_id


def test_a_rollout_takes_the_board_from_v1_to_v2_which_reports_it_and_streams_on(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = start_server(tmp_path / "server", "sqlite", request, sample_interval_ms="200")
    device_id, token = server.register()
    with board(config=firmware_config(server.base, token, trial_ms=TRIAL_MS), reboot=True) as sim:
        sim.wait_for_line("link: online", 30)
        wait_until(lambda: firmware_of(server)[device_id] == BASE_FW, 20, "the board's 0.1.0 in the devices' list")
        before = readings(server, device_id)
        assert before > 0

        rollout_id = on_v2(server, sim, tmp_path, device_id)
        assert firmware_of(server)[device_id] == "0.2.0"
        streams_on(server, device_id)
        done = rollout(server, rollout_id)

    assert done["state"] == "finished"
    assert [(d["device"], d["step"], d["attempts"]) for d in done["devices"]] == [(device_id, "confirmed", 1)]
    assert steps_logged(server, rollout_id, device_id) == ["downloading", "installed", "trial", "confirmed"]
    staged = next(line for line in sim.lines if line.startswith("ota: staged 0.2.0: "))
    print(staged)
    assert "boot: 0.2.0 on trial (boot 1 of 3)" in sim.lines


def roll_out_a_bad_v3(tmp_path: Path, request: pytest.FixtureRequest, source: Path) -> tuple[Server, list[str], str]:
    """Take a board to 0.2.0, then roll out 0.3.0 built from `source`: the board must come back on
    0.2.0 by itself and stream on, and the rollout record `rolled_back`. The server, the board's lines
    since the rollout started, and the reason the rollout recorded."""
    server = start_server(tmp_path / "server", "sqlite", request, sample_interval_ms="200")
    device_id, token = server.register()
    with board(config=firmware_config(server.base, token, trial_ms=TRIAL_MS), reboot=True) as sim:
        on_v2(server, sim, tmp_path, device_id)
        release(server, tmp_path, "0.3.0", source)
        since = sim.mark()
        rollout_id = start_rollout(server, "0.3.0", [device_id])
        gone_back = wait_step(server, rollout_id, device_id, "rolled_back", 120)
        sim.wait_for_line("link: online", 30, since)
        assert firmware_of(server)[device_id] == "0.2.0"
        streams_on(server, device_id)
        done = rollout(server, rollout_id)
        lines = sim.lines[since:]
    assert steps_logged(server, rollout_id, device_id) == ["downloading", "installed", "rolled_back"]
    assert (done["state"], done["counts"]["rolled_back"]) == ("finished", 1)
    return server, lines, str(gone_back["reason"])


def test_a_v3_that_raises_at_import_rolls_the_board_back_to_v2_and_the_rollout_says_why(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    _, lines, reason = roll_out_a_bad_v3(tmp_path, request, broken_firmware(tmp_path))
    assert reason == BROKEN
    assert f"boot: leaving 0.3.0: {BROKEN}" in lines


def test_a_v3_that_cannot_reach_the_server_rolls_the_board_back_to_v2_after_its_boots_and_the_rollout_says_why(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server, lines, reason = roll_out_a_bad_v3(tmp_path, request, unreachable_firmware(tmp_path))
    assert reason == f"no welcome from the server in 3 boots ({TRIAL_MS // 1000} s each)"
    tries = [line for line in lines if line.startswith("boot: 0.3.0 on trial")]
    assert tries == [f"boot: 0.3.0 on trial (boot {n} of 3)" for n in (1, 2, 3)]
    assert server.metric_value("pulsewire_auth_refusals_total", 'reason="subprotocol"') >= 3  # v3 tried, each boot


def test_ten_boards_with_a_20_percent_canary_that_fails_the_other_eight_are_never_sent_update(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = start_server(tmp_path / "server", "sqlite", request, sample_interval_ms="1000")
    ids = [f"board-{n:02}" for n in range(10)]
    tokens = server.register_many(ids)
    release(server, tmp_path, "0.2.0", broken_firmware(tmp_path))
    with contextlib.ExitStack() as boards:
        sims = {
            device_id: boards.enter_context(
                board(config=firmware_config(server.base, token, trial_ms=TRIAL_MS), reboot=True)
            )
            for device_id, token in zip(ids, tokens, strict=True)
        }
        for sim in sims.values():
            sim.wait_for_line("link: online", 60)
        canaries, rest = ids[:2], ids[2:]  # 20% of ten, the first by id

        marks = {device_id: sims[device_id].mark() for device_id in canaries}
        rollout_id = start_rollout(server, "0.2.0", ids, canary_percent=20)
        for device_id in canaries:
            wait_step(server, rollout_id, device_id, "rolled_back", 90)
            sims[device_id].wait_for_line(f"boot: leaving 0.2.0: {BROKEN}", 30, marks[device_id])
            sims[device_id].wait_for_line("link: online", 30, marks[device_id])
        halted = rollout(server, rollout_id)
        time.sleep(2)  # a rollout that went on would send `update` to the rest within this
        assert rollout(server, rollout_id) == halted
        fw = firmware_of(server)

    assert halted["state"] == "halted"
    assert halted["reason"] in {f"canary {d} rolled_back: {BROKEN}" for d in canaries}  # whichever came back first
    by_device = {d["device"]: d for d in halted["devices"]}
    assert {d: (by_device[d]["canary"], by_device[d]["step"], by_device[d]["reason"]) for d in canaries} == {
        d: (True, "rolled_back", BROKEN) for d in canaries
    }
    assert {d: (by_device[d]["canary"], by_device[d]["step"], by_device[d]["attempts"]) for d in rest} == {
        d: (False, "queued", 0) for d in rest
    }
    assert fw == dict.fromkeys(ids, BASE_FW)
    for device_id in rest:
        lines = sims[device_id].lines
        assert not any("update" in line or line.startswith(("ota:", "boot:")) for line in lines), device_id
        assert lines.count(f"pulsewire {BASE_FW}: 2 values per reading, every 200 ms") == 1, "it never restarted"
    sent = [line for line in server.log_lines() if '"command sent"' in line and "command=update" in line]
    assert sorted(re.search(r"device=(\S+)", line).group(1) for line in sent) == canaries  # type: ignore[union-attr]
