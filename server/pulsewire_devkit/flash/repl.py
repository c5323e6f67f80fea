"""A connection to MicroPython's raw REPL on the board, through mpremote's transport.

The port is a serial device (/dev/ttyUSB0, COM3), rfc2217:// or socket://host:port (a simulated
board serving the raw REPL over TCP). Every failure becomes a FlashError that says what to do:
no such port, permission denied, port busy, not a MicroPython board, board lost mid-copy.
Files go to the board's current folder (the root on a real board), where `import` and the boot
sequence look for them.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import io
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pulsewire_devkit.flash.errors import FlashError
from pulsewire_devkit.flash.plan import ResetMode, is_socket_port

BAUD = 115200
# One exec on the board: (platform, version, machine, .mpy version word, free bytes or -1).
_INFO = """\
import sys, os
i = sys.implementation
try:
    s = os.statvfs(os.getcwd())
    f = (s[1] or s[0]) * s[4]
except Exception:
    f = -1
print(repr((sys.platform, '.'.join([str(v) for v in i.version[:3]]), getattr(i, '_machine', ''),
            getattr(i, '_mpy', None), f)))
"""
_HARD_RESET = "import time, machine\ntime.sleep_ms(100)\nmachine.reset()"
_RESET_TEXT = {"hard": "hard: machine.reset()", "soft": "soft: Ctrl-D at the REPL"}
_S_IFDIR = 0x4000
_CHUNK = 768  # bytes per write command: 1 KB of base64


@dataclass(frozen=True)
class MicroPythonInfo:
    """What MicroPython on the board reports about itself and its filesystem."""

    platform: str  # sys.platform: esp32, ...
    version: str  # MicroPython's version, 1.29.0
    machine: str  # sys.implementation._machine: "Generic ESP32 module with ESP32"
    mpy: int | None  # sys.implementation._mpy: version | sub-version << 8 | arch << 10
    free: int | None  # bytes free on the filesystem

    @property
    def mpy_version(self) -> int | None:
        return None if self.mpy is None else self.mpy & 0xFF

    def describe(self) -> str:
        where = self.machine or self.platform
        free = f", {self.free / 1024:.0f} KB free" if self.free is not None else ""
        return f"MicroPython {self.version} on {where}{free}"


def reset_text(mode: ResetMode) -> str:
    """How Repl.reset(mode) restarts the board, for the progress line and the dry run."""
    return _RESET_TEXT[mode]


def _serial_ports() -> str:
    try:
        from serial.tools import list_ports

        ports = [p for p in sorted(list_ports.comports()) if p.vid is not None]
    except Exception:  # listing ports is only a hint; any failure means no hint
        return ""
    if not ports:
        return " No USB serial port is connected at all."
    return " Serial ports seen: " + ", ".join(f"{p.device} ({p.description})" for p in ports) + "."


def check_port(port: str) -> None:
    """Fail early, and clearly, on a serial device that is missing or not ours to open."""
    if "://" in port:
        return
    if not os.path.exists(port):
        raise FlashError(
            f"no serial port {port}: is the board plugged in, with a data cable (some USB cables only charge)?"
            + _serial_ports()
        )
    if sys.platform != "win32" and not os.access(port, os.R_OK | os.W_OK):
        group = "dialout"
        with contextlib.suppress(Exception):
            import grp

            group = grp.getgrgid(os.stat(port).st_gid).gr_name
        raise FlashError(
            f"permission denied on {port}: add yourself to the {group} group (sudo usermod -aG {group} $USER), "
            "then log out and in again"
        )


def _not_micropython(port: str, said: str) -> str:
    said = said.strip()
    if "waiting for download" in said:
        return (
            f"the board on {port} is in its bootloader (download mode), not running MicroPython: press its "
            "EN/RESET button; if it stays there, write MicroPython with --firmware-image FILE.bin"
        )
    excerpt = f" It printed: {said[-200:]!r}." if said else " It printed nothing."
    return (
        f"the board on {port} does not answer as MicroPython (no raw REPL).{excerpt} Write MicroPython to it "
        "first with --firmware-image FILE.bin (from https://micropython.org/download/), or, if it runs "
        "MicroPython, press its reset button and check that nothing else holds the port"
    )


class Repl:
    """One open connection to MicroPython's raw REPL on a board (mpremote's SerialTransport)."""

    def __init__(self, port: str, transport: Any) -> None:
        self.port = port
        self._t = transport
        self._reopened_at = 0.0
        self._base64: bool | None = None  # can the board decode base64 (binascii)? Asked once

    @classmethod
    def open(cls, port: str, *, repl_timeout: float = 10.0, boot_s: float = 0.0) -> Repl:
        """Connect and enter the raw REPL (interrupting whatever runs), retrying for `repl_timeout` s.

        `boot_s`: a board that has just been written boots and creates its filesystem first; wait
        up to that long for its `>>> ` prompt rather than interrupt that with Ctrl-C."""
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        check_port(port)
        deadline = time.monotonic() + repl_timeout
        said = ""
        transport = None
        while True:
            try:
                if transport is None:
                    transport = SerialTransport(port, baudrate=BAUD)
                    _no_delay(transport)
                    if boot_s > 0:
                        booted = transport.read_until(1, b">>> ", timeout=boot_s, timeout_overall=boot_s)
                        said = booted.decode(errors="replace")
                        boot_s = 0.0
                captured = io.StringIO()
                with contextlib.redirect_stdout(captured):  # mpremote prints what it read on failure
                    transport.enter_raw_repl(soft_reset=True, timeout_overall=max(2.0, min(5.0, repl_timeout)))
                return cls(port, transport)
            except TransportError as exc:
                if transport is None:
                    problem = _unopenable(port, str(exc))
                else:
                    said = _printed(captured.getvalue()) or said
                    problem = _not_micropython(port, said)
            except OSError as exc:  # the port vanished (a board re-enumerating after esptool's reset)
                _close_quietly(transport)
                transport = None
                problem = f"lost {port} ({exc}): is the board still plugged in?"
            if time.monotonic() >= deadline:
                _close_quietly(transport)
                raise FlashError(problem)
            time.sleep(0.5)

    # --- calls -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _doing(self, what: str) -> Iterator[None]:
        from mpremote.transport import TransportError, TransportExecError

        try:
            yield
        except TransportExecError as exc:  # the board raised: its traceback's last line says what
            said = exc.error_output.strip().splitlines()[-1:] or [""]
            if "ENOSPC" in said[0] or "Errno 28" in said[0]:
                raise FlashError(
                    f"the board's filesystem is full while {what}: remove files of your own "
                    f"from it (mpremote connect {self.port} ls / rm)"
                ) from None
            raise FlashError(f"the board failed while {what}: {said[0]}") from None
        except TransportError as exc:
            raise FlashError(
                f"the board on {self.port} stopped answering while {what} ({str(exc).strip()[:200]}). If it "
                "reset itself (a watchdog started by the firmware it was running), run the command again: "
                "main.py is removed first, so it now starts without the old firmware"
            ) from None
        except OSError as exc:
            if exc.errno == 28:  # ENOSPC
                raise FlashError(
                    f"the board's filesystem is full while {what}: remove files of your own "
                    "from it (mpremote connect PORT ls / rm)"
                ) from None
            raise FlashError(f"the board on {self.port} failed while {what}: {exc}") from None
        except Exception as exc:  # pyserial's SerialException when the port goes away
            if type(exc).__name__ != "SerialException":
                raise
            raise FlashError(f"lost {self.port} while {what} ({exc}): is the board still plugged in?") from None

    def info(self) -> MicroPythonInfo:
        with self._doing("reading its MicroPython version"):
            out = self._t.exec(_INFO)
        platform, version, machine, mpy, free = ast.literal_eval(out.decode().strip())
        return MicroPythonInfo(platform, version, machine, mpy, None if free < 0 else free)

    def listdir(self) -> dict[str, tuple[bool, int]]:
        """name -> (is a folder, size) of the board's current folder."""
        with self._doing("listing its files"):
            entries = self._t.fs_listdir("")
        return {e.name: (bool(e.st_mode & _S_IFDIR), e.st_size) for e in entries}

    def read(self, name: str) -> bytes:
        with self._doing(f"reading {name}"):
            return bytes(self._t.fs_readfile(name))

    def write(self, name: str, data: bytes) -> None:
        """Write a file, in base64 when the board has binascii: a third of what mpremote's repr() of
        .mpy bytes sends (about 4 characters a byte), which is what a 115200-baud line is slow at."""
        from mpremote.transport import TransportExecError

        with self._doing(f"writing {name}"):
            if self._base64 is None:
                try:
                    self._t.exec("from binascii import a2b_base64 as _pw_b64")
                    self._base64 = True
                except TransportExecError:
                    self._base64 = False
            if not self._base64:
                self._t.fs_writefile(name, data, chunk_size=512)
                return
            self._t.exec(f"_pw_f = open({name!r}, 'wb')")
            try:
                for i in range(0, len(data), _CHUNK):
                    encoded = base64.b64encode(data[i : i + _CHUNK]).decode()
                    self._t.exec(f"_pw_f.write(_pw_b64('{encoded}'))")
            finally:
                self._t.exec("_pw_f.close()")

    def remove(self, name: str) -> None:
        with self._doing(f"removing {name}"):
            self._t.fs_rmfile(name)

    def reset(self, mode: ResetMode) -> None:
        """Restart the board so it runs main.py: `hard` is machine.reset() (Wi-Fi and peripherals
        start clean), `soft` leaves the raw REPL and sends Ctrl-D (the USB link stays up)."""
        with self._doing("resetting it"):
            if mode == "hard":
                self._t.exec_raw_no_follow(_HARD_RESET)
                self._t.in_raw_repl = False
            else:
                self._t.exit_raw_repl()
                time.sleep(0.05)
                self._t.serial.write(b"\x04")

    def poll(self) -> bytes:
        """What the board printed since the last call, without waiting. A port that vanished (native
        USB boards re-enumerate on reset) is reopened, at most once a second."""
        ser = self._t.serial
        got = bytearray()
        try:
            # in_waiting is a byte count on a serial port, but only 0 or 1 on socket:// (pyserial
            # selects on the socket), so read until nothing is waiting.
            while len(got) < 65536:
                n = ser.in_waiting
                if not n:
                    return bytes(got)
                got += ser.read(n)
            return bytes(got)
        except Exception:  # pyserial raises SerialException, OSError or TypeError on a closed port
            now = time.monotonic()
            if now - self._reopened_at >= 1.0:
                self._reopened_at = now
                self._reopen()
            return bytes(got)

    def _reopen(self) -> None:
        import serial

        with contextlib.suppress(Exception):
            self._t.serial.close()
        with contextlib.suppress(Exception):
            self._t.serial = serial.serial_for_url(self.port, baudrate=BAUD, timeout=0)

    def close(self) -> None:
        _close_quietly(self._t)


def _printed(captured: str) -> str:
    """mpremote prints the bytes it read as a Python bytes literal; return them as text."""
    said = []
    for line in captured.splitlines():
        with contextlib.suppress(Exception):
            value = ast.literal_eval(line.strip())
            if isinstance(value, bytes):
                said.append(value.decode(errors="replace"))
                continue
        said.append(line)
    return "\n".join(said)


def _unopenable(port: str, problem: str) -> str:
    if is_socket_port(port):
        return f"nothing answers at {port}: is the simulated board running (pulsewire board-sim)?"
    return (
        f"cannot open {port} ({problem}): another program may have it open (a serial monitor, screen, "
        "another mpremote or esptool, the Arduino IDE); close it and run the command again"
    )


def _no_delay(transport: Any) -> None:
    """socket://: send each small REPL write at once. With Nagle's algorithm on, every command
    waits for the delayed ACK of the previous write (40 ms a round trip, seconds per file)."""
    sock = getattr(transport.serial, "_socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _close_quietly(transport: Any) -> None:
    if transport is None:
        return
    with contextlib.suppress(Exception):
        if transport.in_raw_repl:
            transport.exit_raw_repl()
    with contextlib.suppress(Exception):
        transport.close()
