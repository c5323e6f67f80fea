"""Over-the-air updates on the simulated board (real MicroPython): ota.py and the boot layer otaboot.py.

The board starts on the firmware in device/firmware (0.1.0, at the root of its filesystem, as
`pulsewire flash` leaves it). A device-channel server (tests/support/fakeserver.py) welcomes it,
acks its readings and sends the `update` command (docs/protocol.md); the release files
come over real HTTP from tests/support/releasefiles.py, through the same port, with the device's
token and Range. Releases are device/firmware compiled as `pulsewire flash` compiles it, with
the version set and, for the bad ones, a fault put in.

A reset of the simulated board keeps its filesystem as it was at that moment, as a power cut
does. The cuts the test cannot time from outside (between two renames that follow each other
without a pause) are made by booting the board on the files such a cut leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pulsewire import firmware
from pulsewire_devkit.simboard.runner import BoardError, SimBoard
from tests.support.fakeserver import Conn, FakeServer
from tests.support.releasefiles import Release, ReleaseFiles, build_release, release_files
from tests.support.simboard import board, firmware_config
from tests.support.waiting import wait_until

TOKEN = "pwd_ota-test-token"
TRIAL_MS = 4000
BASE_FW = "0.1.0"


@dataclass
class Channel:
    """The server's side of the device channel: welcome, acks, and the commands it is given."""

    hellos: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    readings: dict[str, int] = field(default_factory=dict)  # per fw
    pending: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, conn: Conn) -> None:
        hello = await conn.recv()
        if hello is None:
            return
        self.hellos.append(hello)
        conn.send({"type": "welcome", "time": int(time.time() * 1000), "interval": 200})
        sender = asyncio.create_task(self._send_pending(conn))
        try:
            while (msg := await conn.recv()) is not None:
                if msg.get("type") == "telemetry":
                    self.readings[hello["fw"]] = self.readings.get(hello["fw"], 0) + len(msg["data"])
                    conn.send({"type": "ack", "seq": msg["seq"]})
                elif msg.get("type") == "result":
                    self.results.append(msg)
        finally:
            sender.cancel()

    async def _send_pending(self, conn: Conn) -> None:
        while True:
            with self.lock:
                out, self.pending[:] = list(self.pending), []
            for message in out:
                conn.send(message)
            await asyncio.sleep(0.05)

    def send(self, message: dict[str, Any]) -> None:
        with self.lock:
            self.pending.append(message)

    def hello_from(self, fw: str, since: int = 0) -> dict[str, Any] | None:
        return next((h for h in self.hellos[since:] if h["fw"] == fw), None)

    def wait_hello(self, fw: str, since: int = 0, timeout: float = 60) -> dict[str, Any]:
        wait_until(lambda: self.hello_from(fw, since) is not None, timeout, f"a hello from {fw}")
        hello = self.hello_from(fw, since)
        assert hello is not None
        return hello

    def wait_result(self, command_id: str, timeout: float = 60) -> dict[str, Any]:
        wait_until(lambda: any(r["id"] == command_id for r in self.results), timeout, f"the result of {command_id}")
        return next(r for r in self.results if r["id"] == command_id)


@dataclass
class Rig:
    channel: Channel
    files: ReleaseFiles
    server: FakeServer
    sim: SimBoard
    tmp: Path

    def release(self, version: str, edit: Any = None, replace: dict[str, bytes] | None = None) -> Release:
        made = build_release(version, self.tmp, edit)
        self.files.add(made, replace)
        return made

    def update(self, release: Release, command_id: str, timeout: float = 60) -> dict[str, Any]:
        self.channel.send(release.command(command_id))
        return self.channel.wait_result(command_id, timeout)

    def to_version(self, release: Release, command_id: str) -> dict[str, Any]:
        """Update and wait for the new version's first hello; returns it."""
        since = len(self.channel.hellos)
        result = self.update(release, command_id)
        assert result["ok"] is True, result
        return self.channel.wait_hello(release.version, since)


@contextlib.contextmanager
def rig(tmp_path: Path, on_board: dict[str, str | bytes] | None = None) -> Iterator[Rig]:
    """A board on 0.1.0 (plus `on_board` files), its server, and the release files behind it."""
    channel = Channel()
    with release_files(TOKEN) as files, FakeServer([channel], http_port=files.port) as server:
        config = firmware_config(server.url, TOKEN, trial_ms=TRIAL_MS)
        with board(config=config, files=on_board or {}, reboot=True) as sim:
            yield Rig(channel, files, server, sim, tmp_path)


def staged(release: Release) -> dict[str, str | bytes]:
    """The board's files for `release` staged in /fw/<version>/, as ota.py leaves them."""
    folder = f"/fw/{release.version}/"
    out: dict[str, str | bytes] = {folder + path: data for path, data in release.files.items()}
    out[folder + "manifest.json"] = json.dumps({"version": release.version, "files": release.manifest()})
    return out


def boot_state(**state: Any) -> str:
    return json.dumps(state)


def broken_import(sources: dict[str, str]) -> None:
    sources["session.py"] = "import pulsewire_no_such_module  # noqa\n" + sources["session.py"]


def no_server(sources: dict[str, str]) -> None:
    """A version that asks for a subprotocol nobody speaks: it never gets a welcome."""
    sources["link.py"] = sources["link.py"].replace('SUBPROTOCOL = "pulsewire.v1"', 'SUBPROTOCOL = "pulsewire.v0"')


def heap_during_update(sim: SimBoard) -> tuple[int, int]:
    """(bytes the firmware held before, the most it held while updating), sampled by the host.

    Each sample is a full collection outside the firmware (SimBoard.heap); the firmware's own
    figure in its `ota: staged` line can include garbage on this port, whose gc.collect() only
    runs once control returns to JavaScript.
    """
    before = min(sim.heap()["alloc"] for _ in range(3))
    peak = before
    since = sim.mark()
    while not any(line.startswith("ota: staged ") for line in sim.lines[since:]):
        with contextlib.suppress(BoardError):  # the board may be restarting into the update already
            peak = max(peak, sim.heap(timeout=2)["alloc"])
    return before, peak


# --- updates ----------------------------------------------------------------------------------------


def test_an_update_takes_the_board_to_v2_which_reports_it_and_streams_on(tmp_path: Path) -> None:
    with rig(tmp_path) as r:
        first = r.channel.wait_hello(BASE_FW)
        assert first["boot"] == {"state": "confirmed"}  # never updated
        v2 = r.release("0.2.0")
        asked = time.monotonic()
        hello = r.to_version(v2, "c-1")
        took = time.monotonic() - asked
        assert hello["boot"] == {"state": "trial", "previous": BASE_FW}
        assert r.channel.results[-1]["detail"] == "staged 0.2.0; restarting into it on trial"
        r.sim.wait_for_line("boot: 0.2.0 confirmed", 20)
        wait_until(lambda: r.channel.readings.get("0.2.0", 0) >= 10, 30, "readings from 0.2.0")

        since = len(r.channel.hellos)
        r.sim.cut()  # a new connection: the version is confirmed now
        assert r.channel.wait_hello("0.2.0", since)["boot"] == {"state": "confirmed", "previous": BASE_FW}

    for path in v2.files:  # every file, once, with the device's token (a 401 would have failed it)
        assert [s.status for s in r.files.fetched(path)] == [206], path
    print(f"update of {len(v2.files)} files, {v2.size} bytes: on 0.2.0 {took:.1f} s after the command")


def test_the_heap_stays_within_the_firmware_s_budget_during_an_update(tmp_path: Path) -> None:
    with rig(tmp_path) as r:
        r.channel.wait_hello(BASE_FW)
        v2 = r.release("0.2.0")
        r.files.slow["*"] = 0.01  # long enough to sample the heap many times on the way
        r.channel.send(v2.command("c-1"))
        before, peak = heap_during_update(r.sim)
        r.channel.wait_hello("0.2.0")
    extra_kb = (peak - before) / 1024
    print(f"heap: {before / 1024:.1f} KB held before the update, {peak / 1024:.1f} KB at most during it")
    assert extra_kb < 20, f"the update took {extra_kb:.1f} KB more heap; the firmware has about 100 KB in all"


def test_a_v3_that_raises_at_import_goes_back_to_v2_by_itself(tmp_path: Path) -> None:
    with rig(tmp_path) as r:
        r.channel.wait_hello(BASE_FW)
        r.to_version(r.release("0.2.0"), "c-1")
        r.sim.wait_for_line("boot: 0.2.0 confirmed", 20)
        since = len(r.channel.hellos)
        command = r.release("0.3.0", broken_import).command("c-2")
        command["args"]["rollout"] = "ro_7"  # named in the boot state, reported after going back
        r.channel.send(command)
        assert r.channel.wait_result("c-2")["ok"] is True
        hello = r.channel.wait_hello("0.2.0", since)
        wait_until(lambda: r.channel.readings.get("0.2.0", 0) >= 20, 30, "readings from 0.2.0 again")
    assert hello["boot"] == {
        "state": "confirmed",
        "rolled_back_from": "0.3.0",
        "reason": "ImportError: no module named 'pulsewire_no_such_module'",
        "rollout": "ro_7",
    }
    assert r.channel.hello_from("0.3.0") is None
    assert "boot: leaving 0.3.0: ImportError: no module named 'pulsewire_no_such_module'" in r.sim.lines


def test_a_v3_that_cannot_reach_the_server_goes_back_to_v2_after_its_boots(tmp_path: Path) -> None:
    with rig(tmp_path) as r:
        r.channel.wait_hello(BASE_FW)
        r.to_version(r.release("0.2.0"), "c-1")
        r.sim.wait_for_line("boot: 0.2.0 confirmed", 20)
        since = len(r.channel.hellos)
        assert r.update(r.release("0.3.0", no_server), "c-2")["ok"] is True
        hello = r.channel.wait_hello("0.2.0", since, timeout=90)
    assert hello["boot"] == {
        "state": "confirmed",
        "rolled_back_from": "0.3.0",
        "reason": "no welcome from the server in 3 boots (4 s each)",
    }
    assert [line for line in r.sim.lines if line.startswith("boot: 0.3.0 on trial")] == [
        f"boot: 0.3.0 on trial (boot {n} of 3)" for n in (1, 2, 3)
    ]
    assert r.channel.hello_from("0.3.0") is None


def test_a_file_that_does_not_match_its_sha256_is_refused(tmp_path: Path) -> None:
    with rig(tmp_path) as r:
        r.channel.wait_hello(BASE_FW)
        v2 = build_release("0.2.0", tmp_path)
        tampered = bytearray(v2.files["session.mpy"])
        tampered[-1] ^= 0xFF
        r.files.add(v2, {"session.mpy": bytes(tampered)})
        result = r.update(v2, "c-1")
        assert result == {
            "type": "result",
            "id": "c-1",
            "ok": False,
            "detail": "session.mpy does not match its sha256; refused",
        }
        wait_until(lambda: r.channel.readings.get(BASE_FW, 0) >= 10, 30, "readings from 0.1.0 still")
        assert len(r.channel.hellos) == 1  # no restart

        requests = len(r.files.requests)
        r.files.add(v2)  # the right bytes now: the files fetched whole before are not fetched again
        assert r.channel.hello_from("0.2.0") is None
        r.to_version(v2, "c-2")
    again = [s.path.rsplit("/", 1)[1] for s in r.files.requests[requests:]]
    names = list(v2.files)
    assert again == names[names.index("session.mpy") :]


def test_staged_files_that_no_longer_match_are_never_run(tmp_path: Path) -> None:
    v2 = build_release("0.2.0", tmp_path)
    files = staged(v2)
    files["/fw/0.2.0/session.mpy"] = bytes(v2.files["session.mpy"][:-1]) + b"\0"
    files["/fw/boot.json"] = boot_state(run="0.2.0", fw="0.2.0", state="confirmed", back="", back_fw=BASE_FW)
    with rig(tmp_path, files) as r:
        hello = r.channel.wait_hello(BASE_FW)
    assert hello["boot"] == {
        "state": "confirmed",
        "rolled_back_from": "0.2.0",
        "reason": "session.mpy does not match its sha256",
    }


# --- power cuts ------------------------------------------------------------------------------------


def midway_through_session_mpy(r: Rig, release: Release) -> int:
    """Once the board is up, send `update` for `release` (command c-1) with session.mpy served slowly,
    and return when part of it has come: the number of hellos seen by then."""
    r.channel.wait_hello(BASE_FW)
    r.files.slow["session.mpy"] = 0.2
    r.channel.send(release.command("c-1"))
    wait_until(lambda: any(s.sent >= 1024 for s in r.files.fetched("session.mpy")), 30, "part of session.mpy")
    return len(r.channel.hellos)


def test_a_reset_during_the_download_boots_v1_and_the_download_resumes(tmp_path: Path) -> None:
    with rig(tmp_path) as r:
        v2 = r.release("0.2.0")
        since = midway_through_session_mpy(r, v2)
        r.sim.reset()
        assert r.channel.wait_hello(BASE_FW, since)["boot"] == {"state": "confirmed"}
        cut_at = r.files.fetched("session.mpy")[0].sent

        r.files.slow.clear()
        r.to_version(v2, "c-2")
    resumed = r.files.fetched("session.mpy")[1]
    assert resumed.status == 206 and resumed.range is not None
    assert 0 < int(resumed.range.removeprefix("bytes=").rstrip("-")) <= cut_at


def test_the_same_update_sent_again_while_it_downloads_is_answered_by_the_running_one(tmp_path: Path) -> None:
    """A server that saw the board reconnect mid-download sends `update` again: the download goes
    on, and its result answers the latest command, instead of a refusal that would fail the rollout."""
    with rig(tmp_path) as r:
        v2 = r.release("0.2.0")
        since = midway_through_session_mpy(r, v2)
        r.channel.send(v2.command("c-2"))
        time.sleep(0.5)
        r.files.slow.clear()
        assert r.channel.wait_result("c-2")["ok"] is True
        r.channel.wait_hello("0.2.0", since)
    assert [x["id"] for x in r.channel.results] == ["c-2"]
    assert len(r.files.fetched("session.mpy")) == 1  # one download, never started again


def test_a_reset_after_staging_boots_v1_and_the_staged_release_is_used(tmp_path: Path) -> None:
    v2 = build_release("0.2.0", tmp_path)
    with rig(tmp_path, staged(v2)) as r:
        assert r.channel.wait_hello(BASE_FW)["boot"] == {"state": "confirmed"}
        r.files.add(v2)
        r.to_version(v2, "c-1")
    assert r.files.requests == []  # staged whole and checked: nothing to fetch again


@pytest.mark.parametrize("torn", [False, True], ids=["new-state-written", "new-state-torn"])
def test_a_reset_during_the_swap_boots_the_running_version(tmp_path: Path, torn: bool) -> None:
    v2 = build_release("0.2.0", tmp_path)
    v3 = build_release("0.3.0", tmp_path)
    trial = boot_state(run="0.3.0", fw="0.3.0", state="trial", tries=0, back="0.2.0", back_fw="0.2.0", wait_ms=TRIAL_MS)
    files = {**staged(v2), **staged(v3)}
    files["/fw/boot.json"] = boot_state(run="0.2.0", fw="0.2.0", state="confirmed", back="", back_fw=BASE_FW)
    files["/fw/boot.tmp"] = trial[: len(trial) // 2] if torn else trial  # the rename did not happen
    with rig(tmp_path, files) as r:
        hello = r.channel.wait_hello("0.2.0")
        r.files.add(v3)
        r.to_version(v3, "c-1")
        r.sim.wait_for_line("boot: 0.3.0 confirmed", 20)
    assert hello["boot"] == {"state": "confirmed", "previous": BASE_FW}
    assert r.channel.hello_from(BASE_FW) is None


def test_a_reset_on_the_trial_s_first_boot_tries_it_again(tmp_path: Path) -> None:
    with rig(tmp_path) as r:
        r.channel.wait_hello(BASE_FW)
        v2 = r.release("0.2.0")
        since = r.sim.mark()
        r.channel.send(v2.command("c-1"))
        r.sim.wait_for_line("boot: 0.2.0 on trial (boot 1 of 3)", 60, since)
        r.sim.reset()
        r.sim.wait_for_line("boot: 0.2.0 on trial (boot 2 of 3)", 30, since)
        assert r.channel.wait_hello("0.2.0")["boot"] == {"state": "trial", "previous": BASE_FW}
        r.sim.wait_for_line("boot: 0.2.0 confirmed", 20, since)


def test_resets_on_every_boot_of_a_trial_take_the_board_back(tmp_path: Path) -> None:
    with rig(tmp_path) as r:
        r.channel.wait_hello(BASE_FW)
        v2 = r.release("0.2.0")
        since = r.sim.mark()
        hellos = len(r.channel.hellos)
        r.channel.send(v2.command("c-1"))
        for n in (1, 2, 3):
            r.sim.wait_for_line(f"boot: 0.2.0 on trial (boot {n} of 3)", 60, since)
            r.sim.reset()
        hello = r.channel.wait_hello(BASE_FW, hellos)
    assert hello["boot"]["rolled_back_from"] == "0.2.0"
    assert r.channel.hello_from("0.2.0") is None


GOOD_ARGS: dict[str, Any] = {
    "rollout": "ro_1",
    "version": "0.4.0",
    "files": [{"path": "main.mpy", "sha256": "a" * 64, "size": 3}],
    "base": "/api/releases/0.4.0/files/",
}


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"version": "../0.4.0"}, "version: expected a plain name"),
        ({"version": 4}, "version: expected a plain name"),
        ({"base": "api/releases/"}, "base: expected a path on the server"),
        ({"files": []}, "files: expected a list"),
        ({"files": [{"path": "lib/x.py", "sha256": "a" * 64, "size": 3}]}, "files: each needs a plain path"),
        ({"files": [{"path": "main.py", "sha256": "a" * 63, "size": 3}]}, "files: each needs a plain path"),
        ({"files": [{"path": "x.py", "sha256": "a" * 64, "size": 3}]}, "files: no main.py"),
        ({"rollout": 7}, "rollout: expected an id"),
        ({"rollout": "r" * 65}, "rollout: expected an id"),
    ],
)
def test_update_args_of_a_bad_shape_are_refused_before_anything_is_fetched(change: dict[str, Any], reason: str) -> None:
    ota = firmware.load("ota", stand_ins={"hardware": types.ModuleType("hardware")})
    without = {name: value for name, value in GOOD_ARGS.items() if name != "rollout"}  # from an older server
    assert ota.check(without)[0] == ota.check(GOOD_ARGS)[0] == "0.4.0"
    with pytest.raises(ota.UpdateError, match=reason):
        ota.check({**GOOD_ARGS, **change})
