"""A stand-in for MicroPython's raw REPL on a board, on socket://127.0.0.1:PORT, for the flash tests.

It speaks the raw REPL as mpremote uses it (Ctrl-A enters it; Ctrl-D on an empty
command soft-resets; the raw-paste request is declined, as the simulated board does; a command
answers OK, its output, \\x04, its error, \\x04, >), and runs each command with CPython against a
folder that plays the board's filesystem, through stand-ins for `os`, `sys`, `machine` and `time`.

A reset (machine.reset(), or Ctrl-D at the friendly REPL) "boots": it prints what an ESP32
prints and, when main.py is there, calls `firmware(main)` in a thread: the test's stand-in for
main.py (print log lines; connect to the server with the token from pulsewire.json), which runs
until Ctrl-C, the next reset or stop().

This checks the flash command's side of the conversation with the real mpremote; it does not run
the firmware (the simulated board, `pulsewire board-sim`, runs real MicroPython).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import functools
import io
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"
BANNER = b'MicroPython v1.29.0 on 2026-08-29; fake board with ESP32\r\nType "help()" for more information.\r\n>>> '
ROM_BOOT = "ets Jul 29 2019 12:21:46\r\n\r\nrst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"


class _Reset(Exception):
    pass


class MainPy:
    """One run of the stand-in main.py, from a boot until Ctrl-C, the next reset or stop()."""

    def __init__(self, repl: FakeRepl) -> None:
        self.repl = repl
        self._stopped = threading.Event()

    @property
    def running(self) -> bool:
        return not self._stopped.is_set()

    def print(self, text: str) -> None:
        self.repl.print(text)

    def pause(self, seconds: float) -> bool:
        """time.sleep() in main.py, cut short when it is stopped; True while it still runs."""
        return not self._stopped.wait(seconds)

    def wait_stopped(self) -> None:
        self._stopped.wait()

    def stop(self) -> None:
        self._stopped.set()


Firmware = Callable[[MainPy], None]


class FakeRepl:
    def __init__(
        self,
        root: Path,
        *,
        firmware: Firmware | None = None,
        mpy: int | None = 6 | (0 << 8) | (9 << 10),
        free: int = 1_500_000,
        platform: str = "esp32",
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.firmware = firmware
        self.mpy = mpy
        self.free = free
        self.platform = platform
        self.mode = "friendly"
        self._globals: dict[str, Any] = {}  # the REPL's globals: they last until a reset, as on a board
        self.boots = 0
        self.removed: list[str] = []
        self._booted = threading.Condition()  # notified at each boot
        self._main: MainPy | None = None  # the stand-in main.py's current run
        self._main_threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._conn: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1)
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> FakeRepl:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and stop main.py; every thread this started has ended when it returns."""
        self._stop.set()
        self._stop_main()
        self._listener.close()
        for thread in [self._thread, *self._main_threads]:
            if thread.is_alive():  # it may never have started
                thread.join(10)
            assert not thread.is_alive(), f"{thread.name} did not stop"

    def __enter__(self) -> FakeRepl:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for_boots(self, n: int, timeout: float = 10) -> bool:
        """Until the stand-in has booted `n` times (a reset is answered after the flash has moved on)."""
        with self._booted:
            return self._booted.wait_for(lambda: self.boots >= n, timeout)

    def files(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in self.root.iterdir() if p.is_file()}

    # --- what the board prints -------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        with self._send_lock:
            conn = self._conn
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.sendall(data)

    def print(self, text: str) -> None:
        """A line on the board's console, as main.py's print() puts it there."""
        self.send((text + "\n").replace("\n", "\r\n").encode())

    # --- the raw REPL ----------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:  # timeout, or closed by stop()
                continue
            conn.settimeout(0.2)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._send_lock:
                self._conn = conn
            try:
                self._session(conn)
            finally:
                with self._send_lock:
                    self._conn = None
                conn.close()

    def _session(self, conn: socket.socket) -> None:
        pending = b""
        code = bytearray()
        while not self._stop.is_set():
            try:
                data = conn.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            pending += data
            while pending:
                if self.mode == "raw" and not code:
                    if pending.startswith(b"\x05A\x01"):
                        self.send(b"R\x00")  # raw paste: understood, not supported
                        pending = pending[3:]
                        continue
                    if b"\x05A\x01".startswith(pending):
                        break  # the rest of the request is on its way
                c, pending = pending[:1], pending[1:]
                if c == b"\x03":  # Ctrl-C: interrupt main.py
                    self._stop_main()
                elif c == b"\x01":
                    self._stop_main()
                    self.mode = "raw"
                    code.clear()
                    self.send(RAW_PROMPT)
                elif c == b"\x02":
                    self.mode = "friendly"
                    self.send(b"\r\n" + BANNER)
                elif c == b"\x04" and self.mode == "raw":
                    if code:
                        text = code.decode()
                        code.clear()
                        self.send(b"OK")
                        self._exec(text)
                    else:
                        self._globals = {}
                        self.send(b"OK\r\nMPY: soft reboot\r\n" + RAW_PROMPT)
                elif c == b"\x04":
                    self.send(b"MPY: soft reboot\r\n")
                    self._boot(hard=False)
                elif self.mode == "raw":
                    code += c

    def _exec(self, code: str) -> None:
        out = io.StringIO()
        try:
            self._globals["__builtins__"] = self._builtins(out)
            exec(code, self._globals)
        except _Reset:
            self._boot(hard=True)
            return
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, "EIO")
            err = f'Traceback (most recent call last):\r\n  File "<stdin>", line 1\r\nOSError: [Errno {exc.errno}] {name}\r\n'
            self.send(out.getvalue().encode() + b"\x04" + err.encode() + b"\x04>")
            return
        except Exception as exc:
            err = f'Traceback (most recent call last):\r\n  File "<stdin>", line 1\r\n{type(exc).__name__}: {exc}\r\n'
            self.send(out.getvalue().encode() + b"\x04" + err.encode() + b"\x04>")
            return
        self.send(out.getvalue().encode() + b"\x04\x04>")

    def _boot(self, *, hard: bool) -> None:
        self._stop_main()
        self._globals = {}
        self.mode = "friendly"
        if hard:
            self.send(ROM_BOOT.encode())
        if (self.root / "main.py").exists() and self.firmware is not None:
            self._main = MainPy(self)
            thread = threading.Thread(target=self.firmware, args=(self._main,), name="stand-in main.py", daemon=True)
            self._main_threads.append(thread)
            thread.start()
        else:
            self.send(BANNER)
        with self._booted:
            self.boots += 1
            self._booted.notify_all()

    def _stop_main(self) -> None:
        if self._main is not None:
            self._main.stop()

    # --- the board's modules, on CPython ---------------------------------------------------------

    def _path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def _builtins(self, out: io.StringIO) -> dict[str, Any]:
        modules = {"os": self._os(), "sys": self._sys(), "machine": self._machine(), "time": self._time()}

        def _import(name: str, *args: Any, **kwargs: Any) -> Any:
            return modules[name] if name in modules else builtins.__import__(name, *args, **kwargs)

        def _open(path: str, mode: str = "r") -> Any:
            return open(self._path(path), mode)  # noqa: SIM115

        return {**vars(builtins), "__import__": _import, "print": functools.partial(print, file=out), "open": _open}

    def _os(self) -> SimpleNamespace:
        def ilistdir(path: str = "") -> Any:
            for p in sorted(self._path(path).iterdir()):
                yield (p.name, 0x4000 if p.is_dir() else 0x8000, 0, 0 if p.is_dir() else p.stat().st_size)

        def stat(path: str) -> tuple[int, ...]:
            p = self._path(path)
            if not p.exists():
                raise OSError(errno.ENOENT, path)
            return (0x4000 if p.is_dir() else 0x8000, 0, 0, 0, 0, 0, p.stat().st_size, 0, 0, 0)

        def remove(path: str) -> None:
            p = self._path(path)
            if not p.is_file():
                raise OSError(errno.ENOENT, path)
            self.removed.append(path.lstrip("/"))
            p.unlink()

        return SimpleNamespace(
            ilistdir=ilistdir,
            listdir=lambda path="": sorted(p.name for p in self._path(path).iterdir()),
            stat=stat,
            remove=remove,
            mkdir=lambda path: self._path(path).mkdir(),
            rmdir=lambda path: self._path(path).rmdir(),
            rename=lambda a, b: self._path(a).rename(self._path(b)),
            getcwd=lambda: "/",
            statvfs=lambda path: (4096, 4096, 1000, self.free // 4096, self.free // 4096, 0, 0, 0, 0, 255),
        )

    def _sys(self) -> SimpleNamespace:
        impl = SimpleNamespace(name="micropython", version=(1, 29, 0, ""), _machine="fake board with ESP32")
        if self.mpy is not None:
            impl._mpy = self.mpy
        return SimpleNamespace(platform=self.platform, implementation=impl, path=["", ".frozen", "/lib"])

    def _machine(self) -> SimpleNamespace:
        def reset() -> None:
            raise _Reset

        return SimpleNamespace(reset=reset)

    @staticmethod
    def _time() -> SimpleNamespace:
        return SimpleNamespace(sleep_ms=lambda ms: time.sleep(ms / 1000), ticks_ms=lambda: int(time.monotonic() * 1000))


# --- stand-ins for main.py -----------------------------------------------------------------------


def lines_firmware(*lines: str, every_s: float = 0.2) -> Firmware:
    """main.py that prints `lines` and then keeps printing the last one, as a retrying board does."""

    def firmware(main: MainPy) -> None:
        for line in lines:
            if not main.running:
                return
            main.print(line)
            main.pause(every_s)
        while lines and main.pause(every_s * 5):
            main.print(lines[-1])

    return firmware


def device_firmware(main: MainPy) -> None:
    """main.py that does what the real one does to come online, in CPython: read pulsewire.json,
    check it with the firmware's config.py, connect to the server with the token, say hello, stay."""
    from websockets.sync.client import connect

    from pulsewire import firmware

    config = firmware.load("config")
    root = main.repl.root
    for name in root.iterdir():  # what MicroPython's import would find: .py before .mpy
        if name.suffix == ".mpy" and (root / (name.stem + ".py")).exists():
            main.print(f'Traceback (most recent call last):\n  File "main.py"\nImportError: {name.stem}.py shadows')
            return
        if name.suffix == ".mpy" and name.read_bytes()[:2] != b"M\x06":
            main.print('Traceback (most recent call last):\n  File "main.py"\nValueError: incompatible .mpy file')
            return
    try:
        cfg = config.load(str(root / "pulsewire.json"))
    except ValueError as exc:
        main.print(f"pulsewire: cannot start: {exc}")
        return
    secure, host, port, path = config.parse_url(cfg["server"])
    main.print(f"pulsewire 0.1.0: 3 values per reading, every {cfg['interval_ms']} ms")
    if cfg.get("wifi"):
        main.print(f"wifi: joining {cfg['wifi']['ssid']}")
        main.print("wifi: connected, rssi -58")
    url = f"{'wss' if secure else 'ws'}://{host}:{port}{path}"
    try:
        ws = connect(url, subprotocols=["pulsewire.v1"], additional_headers={"Authorization": f"Bearer {cfg['token']}"})  # type: ignore[list-item]
    except Exception as exc:  # what the firmware would print, whatever went wrong
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 401:
            main.print("link: token refused (HTTP 401); check the token, next try in 60 s")
        else:
            main.print(f"link: cannot connect to {host}:{port}: {exc!r}")
        return
    with ws:
        ws.send(json.dumps({"type": "hello", "fw": "0.1.0", "uptime": 1000}))
        welcome = json.loads(ws.recv(timeout=5))
        main.print(f"link: online, interval {welcome.get('interval', 0)} ms, 0 readings waiting")
        now = int(time.time() * 1000)
        ws.send(json.dumps({"type": "telemetry", "seq": 1, "data": [{"ts": now, "values": {"flash_test": 1.5}}]}))
        main.wait_stopped()  # online until Ctrl-C, a reset or stop()
