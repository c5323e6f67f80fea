"""A simulated board in a child process, driven from Python (tests, benchmarks, the CLI).

    with SimBoard(firmware_dir, config) as board:
        board.wait_for_line("link: online", timeout=20)
        board.cut()
        print(board.status()["readings"], board.heap()["alloc"])

The child is `node run.mjs` (see its header for the control commands and exit codes); what the
board prints is collected line by line in `lines`, the runner's own lines start with "pwsim: ".
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from pulsewire_devkit.simboard.node import find_node, micropython_dir, script

PREFIX = "pwsim: "

# run.mjs exit codes
EXIT_STOPPED = 0
EXIT_ERROR = 1
EXIT_RAISED = 2
EXIT_RESET = 3


def _read(proc: subprocess.Popen[str], lines: list[str], changed: threading.Condition, echo: bool) -> None:
    """Collect what the child prints, line by line, until it ends."""
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.rstrip("\n")
        if echo:
            print("board |", line, flush=True)
        with changed:
            lines.append(line)
            changed.notify_all()
    with changed:
        changed.notify_all()


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


class BoardError(RuntimeError):
    """The board did not do what was waited for; the message ends with what it printed last."""


class SimBoard:
    """One simulated board: the firmware in `firmware_dir` (or only `files`) with `config`.

    files: extra or replacing files for the board's filesystem, {"/main.py": "print(1)"}.
    reboot: boot again after a reset (the watchdog, machine.reset()) instead of ending.
    stay: keep running when main.py ends (a board sits at its REPL), so controls still work.
    echo: also print every line the board prints (to see a test's board while it runs).
    """

    def __init__(
        self,
        firmware_dir: Path | None,
        config: Mapping[str, Any] | None = None,
        *,
        files: Mapping[str, str | bytes] | None = None,
        reboot: bool = False,
        stay: bool = False,
        heapsize: int = 256 * 1024,
        echo: bool = False,
    ) -> None:
        self.firmware_dir = firmware_dir
        self.config = dict(config) if config is not None else None
        self.files = dict(files or {})
        self.reboot = reboot
        self.stay = stay
        self.heapsize = heapsize
        self.echo = echo
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._changed = threading.Condition()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._reader: threading.Thread | None = None
        self._reaper: weakref.finalize[Any, SimBoard] | None = None

    # -- life ----------------------------------------------------------------------------------

    def start(self) -> SimBoard:
        node = find_node()
        self._tmp = tempfile.TemporaryDirectory(prefix="pwsim-")
        command = [node, str(script("run.mjs")), *self._arguments(Path(self._tmp.name))]
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        # A board dropped without stop() (or still running when Python exits) takes Node with it.
        self._reaper = weakref.finalize(self, _kill, self.proc)
        # The reader keeps no reference to this object, so dropping it does end the child.
        args = (self.proc, self.lines, self._changed, self.echo)
        self._reader = threading.Thread(target=_read, args=args, name="pwsim-stdout", daemon=True)
        self._reader.start()
        return self

    def _arguments(self, tmp: Path) -> list[str]:
        """run.mjs's command line; the configuration and files go through files in `tmp`."""
        args = ["--micropython", str(micropython_dir()), "--heapsize", str(self.heapsize)]
        if self.firmware_dir is not None:
            args += ["--firmware", str(self.firmware_dir)]
        if self.config is not None:
            (tmp / "config.json").write_text(json.dumps(self.config))
            args += ["--config", str(tmp / "config.json")]
        for i, (path, data) in enumerate(self.files.items()):
            host_file = tmp / f"file-{i}"
            host_file.write_bytes(data.encode() if isinstance(data, str) else data)
            args += ["--file", f"{path}={host_file}"]
        if self.reboot:
            args.append("--reboot")
        if self.stay:
            args.append("--stay")
        return args

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10) -> int:
        """End the simulation; returns the runner's exit code."""
        if self.proc is None:
            return EXIT_STOPPED
        if self.proc.poll() is None:
            with contextlib.suppress(BoardError):  # it may have ended meanwhile
                self.control("stop")
            with contextlib.suppress(subprocess.TimeoutExpired):  # then killed, below
                self.proc.wait(timeout)
        if self._reaper is not None:
            self._reaper()  # kills it if it did not stop in time
        if self._reader is not None:
            self._reader.join(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return self.proc.returncode

    def wait_exit(self, timeout: float = 30) -> int:
        """Wait for the runner to end by itself (main.py ended, a reset without reboot)."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise BoardError(f"the board still runs after {timeout} s{self._tail()}") from None
        if self._reader is not None:
            self._reader.join(5)
        return code

    def __enter__(self) -> SimBoard:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- output --------------------------------------------------------------------------------

    def mark(self) -> int:
        """The number of lines so far: pass it as `since` to wait for what comes after."""
        with self._changed:
            return len(self.lines)

    def wait_for_line(self, substring: str, timeout: float = 10, since: int = 0) -> str:
        """The first line at index >= since containing `substring`, waiting up to `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[since:]:
                    if substring in line:
                        return line
                since = max(since, len(self.lines))
                left = deadline - time.monotonic()
                if left <= 0 or (not self.running and not self._reader_alive()):
                    state = "" if self.running else f" (the runner ended: exit {self.proc and self.proc.poll()})"
                    raise BoardError(f"no line with {substring!r} within {timeout} s{state}{self._tail()}")
                self._changed.wait(min(left, 0.5))

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def _tail(self, n: int = 40) -> str:
        with self._changed:
            tail = self.lines[-n:]
        return ":\n" + "\n".join("    " + line for line in tail) if tail else " (it printed nothing)"

    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    # -- controls (run.mjs) -------------------------------------------------------------------

    def control(self, cmd: str, **args: Any) -> None:
        if self.proc is None or self.proc.stdin is None or self.proc.poll() is not None:
            raise BoardError(f"control {cmd!r}: the board is not running{self._tail()}")
        try:
            self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:  # ValueError: stdin already closed
            raise BoardError(f"control {cmd!r}: the board is gone{self._tail()}") from exc

    def _ask(self, cmd: str, timeout: float) -> dict[str, Any]:
        since = self.mark()
        self.control(cmd)
        line = self.wait_for_line(f"{PREFIX}{cmd} ", timeout, since)
        answer: dict[str, Any] = json.loads(line.split(f"{PREFIX}{cmd} ", 1)[1])
        return answer

    def cut(self) -> None:
        """Reset every open TCP connection of the board now, as a network cut would."""
        since = self.mark()
        self.control("cut")
        self.wait_for_line(f"{PREFIX}cut ", 10, since)

    def fail_sensor(self, sensor: str | None = None) -> None:
        """Make a sensor (mcu_temp, adc, dht22, i2c; None: all) fail every read from now on."""
        self.control("fail_sensor", **({"sensor": sensor} if sensor else {}))

    def heal_sensor(self, sensor: str | None = None) -> None:
        self.control("heal_sensor", **({"sensor": sensor} if sensor else {}))

    def pause_net(self) -> None:
        """Refuse the board's new TCP connections (open ones go on: see cut)."""
        self.control("pause_net")

    def resume_net(self) -> None:
        self.control("resume_net")

    def reset(self) -> None:
        """Press the reset button."""
        self.control("reset")

    def heap(self, timeout: float = 10) -> dict[str, int]:
        """{"alloc": gc.mem_alloc(), "free": gc.mem_free()} right after a full collection."""
        return {k: int(v) for k, v in self._ask("heap", timeout).items()}

    def status(self, timeout: float = 10) -> dict[str, Any]:
        """readings (taken so far, = the last MCU temperature), sockets, wdt_feeds, led, boots, ..."""
        return self._ask("status", timeout)
