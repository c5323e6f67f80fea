"""`pulsewire board-sim`: a simulated ESP32 on TCP, driven here by the real mpremote as a board is.

Each test starts the command for real on a free port with its own filesystem folder; mpremote
connects with `socket://127.0.0.1:PORT`. Node.js is required (tests/support/simboard.require_node: a
workstation without it skips, CI fails).
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import cli
from tests.support.server import Server, start_server
from tests.support.simboard import FIRMWARE, firmware_config, require_node
from tests.support.waiting import wait_until

LISTENING = re.compile(r"^board-sim: MicroPython 1\.27 \(WebAssembly\) listening on socket://127\.0\.0\.1:(\d+)$")


class BoardSim:
    """`pulsewire board-sim --port 0 --fs DIR` in a subprocess; its stdout kept line by line."""

    def __init__(self, fs_dir: Path) -> None:
        self.fs_dir = fs_dir
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> BoardSim:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pulsewire", "board-sim", "--port", "0", "--fs", str(self.fs_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        try:
            found = self.wait_for(LISTENING.pattern, timeout=120)  # a first run installs MicroPython
            self.port = int(LISTENING.match(found).group(1))  # type: ignore[union-attr]
            self.wait_for(r"^board-sim: boot ", timeout=30)
        except BaseException:
            self.stop()  # a simulation that did not come up is not left running
            raise
        return self

    def __enter__(self) -> BoardSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            print(line, end="")  # shown by pytest when a test fails
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 20, since: int = 0) -> str:
        """The first line from index `since` on that matches `pattern` (a regex), waiting for it."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        with self.changed:
            while True:
                for line in self.lines[since:]:
                    if regex.search(line):
                        return line
                left = deadline - time.monotonic()
                assert self.proc is not None
                if left <= 0 or (self.proc.poll() is not None and not self.changed.wait(0.2)):
                    tail = "\n".join(self.lines[-40:])
                    raise AssertionError(f"board-sim printed no line matching {pattern!r}:\n{tail}")
                self.changed.wait(min(left, 0.5))

    def count(self, pattern: str) -> int:
        with self.changed:
            return sum(1 for line in self.lines if re.search(pattern, line))

    def mark(self) -> int:
        with self.changed:
            return len(self.lines)

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def mpremote(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "mpremote", "connect", self.url, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert done.returncode == 0, f"mpremote {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def fs_dir(tmp_path: Path) -> Path:
    return tmp_path / "board-fs"


@pytest.fixture
def sim(fs_dir: Path) -> Iterator[BoardSim]:
    require_node()
    with BoardSim(fs_dir) as board:
        yield board


def test_prints_its_address_and_how_to_flash_it(sim: BoardSim) -> None:
    assert sim.port > 0
    sim.wait_for(rf"^flash it with: pulsewire flash --port socket://127\.0\.0\.1:{sim.port} \.\.\.$")
    sim.wait_for(rf"^board-sim: filesystem: {re.escape(str(sim.fs_dir.resolve()))}$")


def test_mpremote_exec_runs_code_on_the_board(sim: BoardSim) -> None:
    assert sim.mpremote("exec", "print(1+1)").stdout.strip() == "2"
    assert sim.mpremote("eval", "6*7").stdout.strip() == "42"
    done = sim.mpremote("exec", "import sys; print(sys.implementation.name, sys.platform)")
    assert done.stdout.split() == ["micropython", "webassembly"]
    failed = sim.mpremote("exec", "1/0", check=False)
    assert failed.returncode == 1 and "ZeroDivisionError" in failed.stdout + failed.stderr


def test_files_copied_with_mpremote_survive_soft_reset_reset_and_a_restart(sim: BoardSim, tmp_path: Path) -> None:
    local = tmp_path / "notes.txt"
    local.write_bytes(b"line one\nline two \x00\xff\n")
    sim.mpremote("fs", "cp", str(local), ":")
    sim.mpremote("fs", "mkdir", "lib")
    sim.mpremote("fs", "cp", str(local), ":lib/copy.txt")
    listing = sim.mpremote("fs", "ls").stdout
    assert re.search(rf"^\s+{len(local.read_bytes())} notes\.txt$", listing, re.M), listing
    assert re.search(r"^\s+0 lib/$", listing, re.M), listing
    for hidden in ("dev/", "proc/", "tmp/", "home/", "sim/"):  # the runtime's, not the board's
        assert hidden not in listing

    sim.mpremote("soft-reset")
    sim.mpremote("exec", "open('text.txt', 'w').write('written on the board')")
    assert sim.mpremote("fs", "cat", "text.txt").stdout == "written on the board"
    sim.mpremote("reset")
    sim.mpremote("fs", "cp", ":lib/copy.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_bytes() == local.read_bytes()

    # The host folder holds the board's files; a new simulation on it finds them.
    assert (sim.fs_dir / "notes.txt").read_bytes() == local.read_bytes()
    sim.stop()
    with BoardSim(sim.fs_dir) as again:
        assert "notes.txt" in again.mpremote("fs", "ls").stdout
        assert again.mpremote("fs", "cat", "text.txt").stdout == "written on the board"
        again.mpremote("fs", "rm", ":lib/copy.txt")
        again.mpremote("fs", "rmdir", ":lib")
        assert again.mpremote("fs", "ls", "lib", check=False).returncode != 0
        missing = again.mpremote("fs", "cat", "nothing.txt", check=False)
        assert "No such file or directory" in missing.stdout + missing.stderr  # ENOENT, as a board says it
    assert not (sim.fs_dir / "lib").exists()


def test_reset_runs_boot_py_then_main_py_on_the_console(sim: BoardSim, tmp_path: Path) -> None:
    (tmp_path / "boot.py").write_text("print('boot marker')\n")
    (tmp_path / "main.py").write_text("import machine\nprint('main marker', machine.reset_cause())\n")
    sim.mpremote("fs", "cp", str(tmp_path / "boot.py"), str(tmp_path / "main.py"), ":")
    mark = sim.mark()
    sim.mpremote("reset")
    sim.wait_for(r"^board-sim: hard reset \(machine\.reset\(\)\)$", since=mark)
    sim.wait_for(r"^board: boot marker$", since=mark)
    sim.wait_for(r"^board: main marker 2$", since=mark)  # machine.HARD_RESET
    sim.wait_for(r"^board-sim: main\.py ended$", since=mark)

    # mpremote starts with a soft reset in the raw REPL: boot.py runs, main.py does not.
    mark = sim.mark()
    sim.mpremote("exec", "pass")
    sim.wait_for(r"^board: boot marker$", since=mark)
    assert sim.count(r"^board: main marker") == 1

    # mpremote reset again: main.py again.
    mark = sim.mark()
    sim.mpremote("reset")
    sim.wait_for(r"^board: main marker 2$", since=mark)


def test_files_boot_py_writes_reach_the_host_folder(sim: BoardSim, tmp_path: Path) -> None:
    (tmp_path / "boot.py").write_text("with open('booted.txt', 'a') as f:\n    f.write('boot\\n')\n")
    sim.mpremote("fs", "cp", str(tmp_path / "boot.py"), ":")
    mark = sim.mark()
    sim.mpremote("reset")
    sim.wait_for(r"^board-sim: fs: wrote /booted\.txt", since=mark)
    assert (sim.fs_dir / "booted.txt").read_text().startswith("boot\n")


def test_ctrl_c_stops_a_main_py_that_never_returns(sim: BoardSim, tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(
        "import time\nn = 0\nwhile True:\n    n += 1\n    print('tick', n)\n    time.sleep(0.1)\n"
    )
    sim.mpremote("fs", "cp", str(tmp_path / "main.py"), ":")
    mark = sim.mark()
    sim.mpremote("reset")
    sim.wait_for(r"^board: tick 3$", since=mark)
    assert sim.mpremote("exec", "print('still', 'here')").stdout.strip() == "still here"
    sim.wait_for(r"^board-sim: Ctrl-C: stopped main\.py$", since=mark)
    ticks = sim.count(r"^board: tick")
    # Another whole command on the board (a second or so: ten ticks of a main.py still running).
    assert sim.mpremote("exec", "print('and again')").stdout.strip() == "and again"
    assert sim.count(r"^board: tick") == ticks, "main.py went on after Ctrl-C"


def test_ctrl_c_stops_a_command_that_never_returns(sim: BoardSim) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        sim.mpremote("exec", "while True: pass", timeout=3)
    assert sim.mpremote("exec", "print('back')").stdout.strip() == "back"
    sim.wait_for(r"^board-sim: Ctrl-C: stopped the running command$")


def _read_until(sock: socket.socket, ending: bytes, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    got = b""
    while not got.endswith(ending):
        chunk = sock.recv(1)
        if not chunk:
            raise AssertionError(f"connection closed; got {got!r}")
        got += chunk
    return got


def test_the_repl_over_a_plain_socket_one_client_at_a_time(sim: BoardSim) -> None:
    with socket.create_connection(("127.0.0.1", sim.port)) as first:
        first.sendall(b"\r\x03")
        _read_until(first, b">>> ")
        first.sendall(b"1+2\r")
        assert b"3\r\n>>> " in _read_until(first, b"3\r\n>>> ")

        # A serial port has one end: a second client is told so and let go.
        with socket.create_connection(("127.0.0.1", sim.port)) as second:
            second.settimeout(10)
            said = b""
            while chunk := second.recv(100):
                said += chunk
            assert b"busy" in said

        # The raw REPL; raw-paste mode is declined, so mpremote falls back to the plain raw REPL.
        first.sendall(b"\x01")
        _read_until(first, b"raw REPL; CTRL-B to exit\r\n>")
        first.sendall(b"\x05A\x01")
        assert _read_until(first, b"R\x00") == b"R\x00"
        first.sendall(b"print('raw')\x04")
        assert _read_until(first, b"\x04>") == b"OKraw\r\n\x04\x04>"
        first.sendall(b"\x02")
        _read_until(first, b">>> ")


def online(server: Server, device_id: str) -> bool:
    return any(d["id"] == device_id and d["online"] for d in server.get("/api/devices").json())


def test_the_firmware_flashed_with_mpremote_streams_to_a_server(
    sim: BoardSim, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = start_server(tmp_path / "server", "sqlite", request, sample_interval_ms="200")
    device_id, token = server.register()
    config = tmp_path / "pulsewire.json"
    config.write_text(json.dumps(firmware_config(server.base, token)))
    firmware = sorted(str(p) for p in FIRMWARE.glob("*.py"))
    sim.mpremote("fs", "cp", *firmware, str(config), ":", timeout=180)
    mark = sim.mark()
    sim.mpremote("reset")
    sim.wait_for(r"^board-sim: main\.py is running", since=mark, timeout=20)

    def readings() -> int:
        resp = server.get(f"/api/devices/{device_id}/telemetry", params={"keys": "mcu_temperature"})
        if resp.status_code == 404 and "has no metric" in resp.text:
            return 0  # nothing stored yet
        assert resp.status_code == 200, resp.text
        return len(resp.json().get("mcu_temperature", []))

    wait_until(lambda: readings() >= 3, 20, f"3 readings from {device_id}")
    assert online(server, device_id)

    # Ctrl-C (what mpremote sends first) stops the firmware; its connection closes with it.
    sim.mpremote("exec", "pass")
    sim.wait_for(r"^board-sim: Ctrl-C: stopped main\.py$", since=mark)
    wait_until(lambda: not online(server, device_id), 10, f"{device_id} offline")
    assert not online(server, device_id)


def test_pulsewire_flash_puts_the_firmware_on_the_simulated_board(
    sim: BoardSim, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = start_server(tmp_path / "server", "sqlite", request)
    done = cli(
        "flash",
        "--port",
        sim.url,
        "--server",
        server.base,
        "--device-id",
        "flashed-sim",
        "--admin-key",
        server.admin_key,
        "--sensor",
        "mcu_temp",
        "--yes",
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "flashed-sim is online" in done.stdout, done.stdout
    assert (sim.fs_dir / "pulsewire.json").is_file() and (sim.fs_dir / "session.mpy").is_file()
    sim.wait_for(r"^board: link: online")


def test_the_simulation_is_stopped_when_a_test_fails_or_it_does_not_come_up(fs_dir: Path) -> None:
    require_node()
    with pytest.raises(RuntimeError, match="the test failed"), BoardSim(fs_dir) as failing:
        raise RuntimeError("the test failed")
    assert failing.proc is not None and failing.proc.poll() is not None

    class NeverUp(BoardSim):
        def wait_for(self, pattern: str, timeout: float = 20, since: int = 0) -> str:
            raise AssertionError("board-sim printed no line matching it")

    never = NeverUp(fs_dir)
    with pytest.raises(AssertionError):
        never.start()
    assert never.proc is not None and never.proc.poll() is not None
