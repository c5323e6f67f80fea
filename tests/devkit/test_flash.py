"""`pulsewire flash` (server/pulsewire_devkit/flash/): the plan and its checks, the firmware compiled
for the board, the board's console read for advice, and whole runs against a real server and a
stand-in raw REPL on socket:// (tests/support/fakerepl.py) driven by the real mpremote.

Not covered here: esptool against a chip, a real serial port, and real MicroPython running the
copied firmware (tests/devkit/test_board_sim.py does that on the simulated board).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pulsewire import firmware
from pulsewire_devkit.flash import image as flash_image
from pulsewire_devkit.flash.console import ConsoleLog
from pulsewire_devkit.flash.copying import FLASHED_FILES
from pulsewire_devkit.flash.dryrun import describe
from pulsewire_devkit.flash.errors import FlashError
from pulsewire_devkit.flash.image import CHIPS
from pulsewire_devkit.flash.mpy import compile_firmware
from pulsewire_devkit.flash.plan import (
    SENSOR_KEYS,
    Options,
    build_config,
    load_firmware_sensors,
    make_plan,
    masked,
    parse_sensor,
)
from pulsewire_devkit.flash.progress import Ui
from pulsewire_devkit.flash.repl import Repl, check_port
from pulsewire_devkit.flash.run import run
from tests.support.fakerepl import FakeRepl, device_firmware, lines_firmware
from tests.support.server import Server, free_port, start_server

FIRMWARE = firmware.folder()
TOKEN = "pwd_" + "t0kenSECRET" * 3
PASSWORD = "wifiSECRETpw"


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """One real server (SQLite) for the module; tests use their own device ids."""
    return start_server(tmp_path_factory.mktemp("flash-server"), "sqlite", request, ping_interval_s="1")


@pytest.fixture
def new_repl(tmp_path: Path) -> Iterator[Callable[..., FakeRepl]]:
    """Starts stand-in REPLs (FakeRepl's keywords); each is stopped when the test ends, passed or failed."""
    numbers = itertools.count()
    with contextlib.ExitStack() as running:

        def start(**kw: Any) -> FakeRepl:
            return running.enter_context(FakeRepl(tmp_path / f"board-{next(numbers)}", **kw))

        yield start


@pytest.fixture
def repl(new_repl: Callable[..., FakeRepl]) -> FakeRepl:
    """A stand-in REPL whose main.py comes online as the real firmware does."""
    return new_repl(firmware=device_firmware)


def flash_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`pulsewire flash ARGS` as a user runs it, without a terminal (no questions asked)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PULSEWIRE_")}
    return subprocess.run(
        [sys.executable, "-m", "pulsewire", "flash", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean,
        input="",  # stdin is not a terminal
    )


def device_ids(server: Server) -> set[str]:
    return {d["id"] for d in server.get("/api/devices").json()}


def options(server: Server, repl: FakeRepl | str, **kw: Any) -> Options:
    port = repl if isinstance(repl, str) else repl.url
    given: dict[str, Any] = {"port": port, "server": server.base, "admin_key": server.admin_key, "wait_s": 20}
    return Options(**{**given, **kw})


class Recorder(Ui):
    def __init__(self, answer: bool | None = None) -> None:
        super().__init__(io.StringIO(), io.StringIO(), None if answer is None else self._answer)
        self.answer = answer
        self.questions: list[str] = []

    def _answer(self, question: str) -> bool:
        self.questions.append(question)
        return bool(self.answer)

    @property
    def text(self) -> str:
        assert isinstance(self.out, io.StringIO) and isinstance(self.err, io.StringIO)
        return self.out.getvalue() + self.err.getvalue()


# --- sensors and configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("mcu_temp", {"type": "mcu_temp"}),
        ("system", {"type": "system"}),
        ("adc:34", {"type": "adc", "pin": 34}),
        (
            "adc:34,name=light,scale=2.5,offset=-0.1",
            {"type": "adc", "pin": 34, "name": "light", "scale": 2.5, "offset": -0.1},
        ),
        ("dht22:4", {"type": "dht22", "pin": 4}),
        ("dht22:pin=4,prefix=out_", {"type": "dht22", "pin": 4, "prefix": "out_"}),
        ("bme280", {"type": "bme280"}),
        ("bme280:sda=21,scl=22,address=0x76", {"type": "bme280", "sda": 21, "scl": 22, "address": 0x76}),
        ('{"type": "adc", "pin": 35, "name": "soil"}', {"type": "adc", "pin": 35, "name": "soil"}),
    ],
)
def test_sensor_specs(spec: str, expected: dict[str, Any]) -> None:
    assert parse_sensor(spec) == expected


@pytest.mark.parametrize(
    "spec, problem",
    [
        ("thermometer:3", "unknown sensor type 'thermometer'"),
        ("adc", "adc needs a pin"),
        ("dht22:prefix=x_", "dht22 needs a pin"),
        ("adc:34,colour=red", "adc has no setting 'colour'"),
        ("adc:thirty", "pin must be a int"),
        ("bme280:21", "needs a name"),
        ("{nope", "not valid JSON"),
        ('{"pin": 3}', 'needs a "type"'),
    ],
)
def test_bad_sensor_specs_say_what_is_wrong(spec: str, problem: str) -> None:
    with pytest.raises(FlashError, match=problem.replace("(", r"\(")):
        parse_sensor(spec)


def test_sensor_kinds_are_the_firmwares() -> None:
    """Every kind --sensor knows is one sensors.py has, and the other way round."""
    assert set(SENSOR_KEYS) == set(load_firmware_sensors(FIRMWARE).KINDS)


def test_chip_list_is_esptools() -> None:
    from esptool.targets import CHIP_DEFS

    assert set(CHIPS) == set(CHIP_DEFS) - {"esp8266"}
    assert flash_image.offset_for("esp32") == 0x1000
    assert flash_image.offset_for("esp32s3") == 0 and flash_image.offset_for("esp32c3") == 0


def test_flags_go_over_the_config_file() -> None:
    base = {"server": "http://old:8000", "token": "pwd_old", "wifi": {"ssid": "home", "password": "p"}, "led": 2}
    cfg = build_config(
        base, server="http://new:8000/", token=None, wifi_ssid=None, wifi_password="q", interval_ms=1000, sensors=[]
    )
    assert cfg == {
        "server": "http://new:8000",
        "token": "pwd_old",
        "wifi": {"ssid": "home", "password": "q"},
        "interval_ms": 1000,
        "led": 2,
    }
    assert list(cfg)[:3] == ["server", "token", "wifi"]
    with pytest.raises(FlashError, match="--wifi-password needs --wifi-ssid"):
        build_config({}, server=None, token=None, wifi_ssid=None, wifi_password="x", interval_ms=None, sensors=[])


@pytest.mark.parametrize(
    "kw, problem",
    [
        ({"interval_ms": 50}, "config: interval_ms: expected an integer in 100..86400000, got 50"),
        ({"sensors": ("dht22:4", "bme280")}, "two values are named 'temperature'; give one sensor a prefix"),
        ({"server": "ftp://x"}, "config: server: expected http://, https://, ws:// or wss://"),
        ({"server": "http://:8000"}, "config: server: no host"),
        ({"sensors": ('{"type": "adc"}',)}, "sensor adc: pin: required GPIO number"),
        ({"sensors": ('{"type": "lux"}',)}, "sensor type 'lux'"),
    ],
)
def test_the_firmwares_own_checks_refuse_the_config(kw: dict[str, Any], problem: str) -> None:
    opts = Options(port="socket://127.0.0.1:1", **{"server": "http://10.0.0.2:8000", "token": TOKEN, **kw})
    with pytest.raises(FlashError) as err:
        make_plan(opts)
    assert "the board would refuse this configuration" in str(err.value)
    assert problem in str(err.value)


def test_config_file_is_the_starting_point(tmp_path: Path) -> None:
    path = tmp_path / "pulsewire.json"
    path.write_text(json.dumps({"server": "http://10.0.0.2:8000", "token": TOKEN, "led": 2, "colour": "red"}))
    plan = make_plan(Options(port="socket://127.0.0.1:1", config_file=path, interval_ms=2000))
    assert plan.identity.token == TOKEN and not plan.identity.registers
    assert plan.config.raw == {
        "server": "http://10.0.0.2:8000",
        "token": TOKEN,
        "interval_ms": 2000,
        "led": 2,
        "colour": "red",
    }
    assert plan.config.effective["buffer"] == 256  # the firmware's default
    assert any("ignores these configuration keys: colour" in w for w in plan.warnings)
    path.write_text("[1, 2]")
    with pytest.raises(FlashError, match="expected a JSON object"):
        make_plan(Options(port="socket://127.0.0.1:1", config_file=path))


@pytest.mark.parametrize(
    "kw, problem",
    [
        ({}, "which device is this board?"),
        ({"device_id": "bad id!"}, "--device-id 'bad id!'"),
        ({"device_id": ".."}, r"--device-id '\.\.'.*not \. or \.\."),
        ({"token": TOKEN, "rotate_token": True}, "cannot be combined with --token"),
        ({"token": TOKEN, "name": "Shed"}, "--name is given when registering"),
        ({"device_id": "shed"}, "no admin key to register the device"),
        ({"device_id": "shed", "server": None}, "--server URL is required"),
    ],
)
def test_identity_problems(kw: dict[str, Any], problem: str) -> None:
    with pytest.raises(FlashError, match=problem.replace("?", r"\?")):
        make_plan(Options(**{"port": "/dev/ttyUSB0", "server": "http://10.0.0.2:8000", **kw}))


def test_loopback_server_warned_for_a_real_board_only() -> None:
    serial = make_plan(Options(port="/dev/ttyUSB0", server="http://127.0.0.1:8000", token=TOKEN))
    assert any("points at the board itself" in w and "--host 0.0.0.0" in w for w in serial.warnings)
    local = make_plan(Options(port="/dev/ttyUSB0", server="http://localhost:8000", token=TOKEN))
    assert any("points at the board itself" in w for w in local.warnings)
    simulated = make_plan(Options(port="socket://127.0.0.1:9", server="http://127.0.0.1:8000", token=TOKEN))
    assert not any("points at the board itself" in w for w in simulated.warnings)
    lan = make_plan(Options(port="/dev/ttyUSB0", server="http://192.168.1.20:8000", token=TOKEN))
    assert not any("points at the board itself" in w for w in lan.warnings)


def test_plan_defaults() -> None:
    plan = make_plan(Options(port="/dev/ttyUSB0", server="ws://10.0.0.2:8000", device_id="shed", admin_key="k"))
    assert plan.api_url == "http://10.0.0.2:8000"  # what this machine calls, from the board's URL
    assert plan.reset == "hard"
    assert plan.steps() == ["server", "compile", "connect", "identity", "copy", "reset", "wait"]
    assert plan.identity.on_exists == "fail"  # no terminal, no --rotate-token
    assert make_plan(Options(port="socket://h:1", server="http://h:1", token=TOKEN)).reset == "soft"
    interactive = make_plan(Options(port="x", server="http://h:1", device_id="a", admin_key="k", interactive=True))
    assert interactive.identity.on_exists == "ask"
    assert (
        make_plan(Options(port="x", server="http://h:1", device_id="a", admin_key="k", yes=True)).identity.on_exists
        == "rotate"
    )


def test_secrets_are_masked() -> None:
    shown = json.dumps(masked({"server": "http://h", "token": TOKEN, "wifi": {"ssid": "home", "password": PASSWORD}}))
    assert TOKEN not in shown and PASSWORD not in shown
    assert "pwd_********" in shown and "home" in shown


# --- the firmware as the board gets it -----------------------------------------------------------


def test_the_real_firmware_compiles_to_mpy() -> None:
    compiled = compile_firmware(FIRMWARE)
    names = [f.name for f in compiled.files]
    modules = sorted(p.stem for p in FIRMWARE.glob("*.py") if p.name not in ("main.py", "boot.py"))
    assert sorted(f.module for f in compiled.files if f.module) == modules
    assert names[-1] == "main.py" and compiled.files[-1].data == (FIRMWARE / "main.py").read_bytes()
    assert compiled.mpy_version == 6
    for f in compiled.files:
        if f.module:
            assert f.data[:2] == b"M\x06"
            assert str(FIRMWARE).encode() not in f.data  # tracebacks name ring.py, not this machine's path
            assert f"{f.module}.py".encode() in f.data


def test_a_syntax_error_stops_the_flash(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("import bad\n")
    (tmp_path / "bad.py").write_text("match x:\n    case 1:\n        pass\n")
    (tmp_path / "manifest.txt").write_text("bad.py\nmain.py\n")
    with pytest.raises(FlashError, match="bad.py does not compile for MicroPython"):
        compile_firmware(tmp_path)


# --- the MicroPython image -----------------------------------------------------------------------


def esp_image(path: Path, chip_id: int, *, merged_at: int | None) -> Path:
    data = bytearray(0x9000)
    data[0] = 0xE9
    data[12:14] = chip_id.to_bytes(2, "little")
    if merged_at is not None:
        data[merged_at : merged_at + 2] = b"\xaa\x50"
    path.write_bytes(bytes(data))
    return path


def test_image_header_names_its_chip(tmp_path: Path) -> None:
    s3 = flash_image.inspect(esp_image(tmp_path / "s3.bin", 9, merged_at=0x8000))
    assert (s3.chip, s3.merged) == ("esp32s3", True)
    esp32 = flash_image.inspect(esp_image(tmp_path / "esp32.bin", 0, merged_at=0x7000))
    assert (esp32.chip, esp32.merged) == ("esp32", True)
    app_only = flash_image.inspect(esp_image(tmp_path / "app.bin", 0, merged_at=None))
    assert app_only.merged is False
    (tmp_path / "fw.uf2").write_bytes(b"UF2\n" + bytes(100))
    with pytest.raises(FlashError, match="not an ESP32 firmware image"):
        flash_image.inspect(tmp_path / "fw.uf2")


def test_image_for_another_chip_is_refused_before_anything(tmp_path: Path) -> None:
    s3 = esp_image(tmp_path / "s3.bin", 9, merged_at=0x8000)
    with pytest.raises(FlashError, match="built for esp32s3, but --chip says esp32"):
        make_plan(Options(port="/dev/ttyUSB0", server="http://h:1", token=TOKEN, firmware_image=s3, chip="esp32"))
    with pytest.raises(FlashError, match="needs a serial port"):
        make_plan(Options(port="socket://h:1", server="http://h:1", token=TOKEN, firmware_image=s3))
    app = esp_image(tmp_path / "app.bin", 0, merged_at=None)
    plan = make_plan(Options(port="/dev/ttyUSB0", server="http://h:1", token=TOKEN, firmware_image=app))
    assert any("no partition table" in w for w in plan.warnings)
    assert plan.steps()[:3] == ["compile", "image", "connect"]


def test_esptool_failures_are_explained() -> None:
    wrong = flash_image._explain(
        "A fatal error occurred: This chip is ESP32-S3, not ESP32. Wrong --chip argument?", "p", "x", 2
    )
    assert "the board is an ESP32-S3, not an ESP32" in wrong and "--chip esp32s3" in wrong
    boot = flash_image._explain(
        "A fatal error occurred: Failed to connect to ESP32: No serial data received.", "p", "x", 2
    )
    assert "BOOT (IO0)" in boot
    image = flash_image._explain(
        "A fatal error occurred: 'fw.bin' is not an ESP32-S3 image. Use --force to flash anyway.", "p", "x", 2
    )
    assert "esptool refused the image for this board ('fw.bin' is not an ESP32-S3 image" in image


# --- the board's console -----------------------------------------------------------------------------


def test_console_log_findings() -> None:
    log = ConsoleLog()
    assert log.feed(b"wifi: joining home\r\nwifi: wrong pass") == ["wifi: joining home"]
    log.feed(b"word for home\r\n")
    assert "password for 'home' is wrong" in log.findings["wifi"].advice
    log.feed(b"wifi: connected, rssi -60\r\nlink: cannot connect to 10.0.0.2:8000: OSError(113)\r\n")
    assert "wifi" not in log.findings
    assert "cannot reach the server at 10.0.0.2:8000" in log.findings["link"].advice
    log.feed(b"link: no answer from 10.0.0.2:8000 within 10 s\r\n")
    assert "10.0.0.2:8000" in log.findings["link"].advice
    log.feed(b"link: token refused (HTTP 401 ...); check the token, next try in 60 s\r\n")
    assert "--rotate-token" in log.findings["token"].advice
    log.feed(b"link: online, interval 5000 ms, 3 readings waiting\r\n")
    assert not log.findings and log.fatal is None
    log.feed(b"wifi: no network named home in range\r\n")
    assert "no network named 'home'" in log.findings["wifi"].advice


def test_console_log_fatal_lines() -> None:
    log = ConsoleLog()
    log.feed(b"pulsewire: cannot start: config: token: required\r\n")
    assert log.fatal is not None and "config: token: required" in log.fatal.advice
    crash = ConsoleLog()
    crash.feed(b'Traceback (most recent call last):\r\n  File "main.py", line 3\r\n')
    assert crash.fatal is None
    crash.feed(b"MemoryError: memory allocation failed\r\n>>> ")
    assert crash.fatal is not None and "MemoryError" in crash.fatal.advice
    assert crash.tail()[-1] == ">>>"


# --- ports ---------------------------------------------------------------------------------------


def test_missing_port() -> None:
    with pytest.raises(FlashError, match="no serial port /dev/ttyNOPE0: is the board plugged in"):
        check_port("/dev/ttyNOPE0")


def test_port_without_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = tmp_path / "ttyUSB0"
    port.write_bytes(b"")
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as root, every file is accessible
    with pytest.raises(FlashError, match=r"permission denied on .*ttyUSB0: add yourself to the \w+ group"):
        check_port(str(port))


def test_nothing_listening_on_socket() -> None:
    with pytest.raises(FlashError, match="nothing answers at socket://127.0.0.1:.*board-sim"):
        Repl.open(f"socket://127.0.0.1:{free_port()}", repl_timeout=0.5)


@pytest.fixture
def modem_port() -> Iterator[int]:
    """A TCP port where something that is not MicroPython answers (a modem, say), until the test ends."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.2)  # how soon the thread sees the test has ended
    ended = threading.Event()

    def chatter() -> None:
        while not ended.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"AT+OK\r\nhello from a modem\r\n")
                _drain_until(conn, ended)

    thread = threading.Thread(target=chatter, name="modem")
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        ended.set()
        thread.join(5)
        listener.close()
    assert not thread.is_alive()


def _drain_until(conn: socket.socket, ended: threading.Event) -> None:
    """Read what the client sends until it hangs up or the test ends."""
    conn.settimeout(0.2)
    while not ended.is_set():
        try:
            if not conn.recv(100):
                return
        except TimeoutError:
            continue
        except OSError:
            return


def test_something_that_is_not_micropython(modem_port: int) -> None:
    with pytest.raises(FlashError) as err:
        Repl.open(f"socket://127.0.0.1:{modem_port}", repl_timeout=1)
    assert "does not answer as MicroPython" in str(err.value) and "--firmware-image" in str(err.value)


# --- the command line ----------------------------------------------------------------------------


def test_help_shows_examples() -> None:
    out = subprocess.run([sys.executable, "-m", "pulsewire", "flash", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for text in (
        "--firmware-image",
        "--device-id",
        "--token",
        "--sensor",
        "dht22:4",
        "--dry-run",
        "--wait-s",
        "pulsewire flash --port /dev/ttyUSB0",
        "--host 0.0.0.0",
    ):
        assert text in out.stdout, text
    top = subprocess.run([sys.executable, "-m", "pulsewire", "--help"], capture_output=True, text=True)
    assert "flash" in top.stdout


def test_dry_run_touches_nothing(server: Server, new_repl: Callable[..., FakeRepl]) -> None:
    fake = new_repl()
    out = flash_cli(
        "--port", fake.url, "--server", server.base, "--device-id", "dry-1", "--admin-key", server.admin_key,
        "--wifi-ssid", "home", "--wifi-password", PASSWORD, "--sensor", "dht22:4", "--dry-run",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "Dry run" in text and "[1/7] check the server" in text and "[7/7] wait up to 60 s" in text
    assert "main.py" in text and "ring.mpy" in text and "pulsewire.json" in text and "KB" in text
    assert '"password": "********"' in text and "<issued by the server>" in text
    assert PASSWORD not in text + out.stderr
    assert "temperature, humidity, dropped every 5000 ms" in text
    assert "dry-1" not in device_ids(server)  # nothing registered
    assert fake.boots == 0 and fake.files() == {}  # the board was not touched


def test_dry_run_masks_a_given_token() -> None:
    out = flash_cli("--port", "/dev/ttyUSB0", "--server", "http://10.1.2.3:8000", "--token", TOKEN, "--dry-run")
    assert out.returncode == 0, out.stderr
    assert TOKEN not in out.stdout + out.stderr and "pwd_********" in out.stdout
    assert "[1/5] compile" in out.stdout  # no server to check: a given token, no id to wait for


def test_no_such_port(server: Server) -> None:
    out = flash_cli("--port", "/dev/ttyNOPE0", "--server", server.base, "--device-id", "noport-1",
                    "--admin-key", server.admin_key)  # fmt: skip
    assert out.returncode == 1
    assert "no serial port /dev/ttyNOPE0" in out.stderr
    assert "noport-1" not in device_ids(server)  # the board is checked before the server is changed


def test_unreachable_server() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    out = flash_cli("--port", "socket://127.0.0.1:1", "--server", url, "--device-id", "x", "--admin-key", "k")
    assert out.returncode == 1
    assert f"cannot reach the server at {url}" in out.stderr and "--host 0.0.0.0" in out.stderr


def test_wrong_admin_key(server: Server, repl: FakeRepl) -> None:
    out = flash_cli("--port", repl.url, "--server", server.base, "--device-id", "key-1", "--admin-key", "pwa_wrong")
    assert out.returncode == 1
    assert "refused the admin key (403)" in out.stderr
    assert "key-1" not in device_ids(server) and "main.py" not in repl.files()


def test_existing_device_without_permission_to_rotate(server: Server, repl: FakeRepl) -> None:
    server.register("taken-1")
    out = flash_cli("--port", repl.url, "--server", server.base, "--device-id", "taken-1",
                    "--admin-key", server.admin_key)  # fmt: skip
    assert out.returncode == 1
    assert "taken-1 is already registered" in out.stderr and "--rotate-token" in out.stderr
    assert repl.files() == {}


# --- whole runs against the stand-in REPL -----------------------------------------------------


def test_flash_registers_copies_and_comes_online(server: Server, repl: FakeRepl) -> None:
    (repl.root / "ring.py").write_text("# an old source copy that would hide ring.mpy")
    (repl.root / "old.mpy").write_bytes(b"M\x06")
    (repl.root / FLASHED_FILES).write_text(json.dumps(["old.mpy", "main.py"]))
    (repl.root / "notes.txt").write_text("the user's own file")
    (repl.root / "main.py").write_text("print('the old firmware')")
    (repl.root / "fw" / "0.2.0").mkdir(parents=True)  # an update the board had: not what runs after this
    (repl.root / "fw" / "boot.json").write_text('{"run": "0.2.0", "state": "confirmed"}')
    out = flash_cli(
        "--port", repl.url, "--server", server.base, "--device-id", "flash-1", "--name", "Flash One",
        "--admin-key", server.admin_key, "--wifi-ssid", "home", "--wifi-password", PASSWORD,
        "--sensor", "mcu_temp", "--sensor", "adc:34,name=light", "--interval-ms", "2000", "--wait-s", "30",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    for n, title in enumerate(
        [
            "checking the server",
            "compiling",
            "connecting to the board",
            "registering flash-1",
            f"copying {len(firmware.manifest()) + 1} files",  # pulsewire.json and the manifest's
            "resetting the board (soft",
            "waiting for flash-1",
        ],
        1,
    ):
        assert f"[{n}/7] {title}" in out.stdout, title
    assert "board| link: online" in out.stdout
    assert "flash-1 is online" in out.stdout
    assert PASSWORD not in out.stdout + out.stderr

    files = repl.files()
    cfg = json.loads(files["pulsewire.json"])
    assert cfg["server"] == server.base and cfg["token"].startswith("pwd_")
    assert cfg["wifi"] == {"ssid": "home", "password": PASSWORD}
    assert cfg["sensors"] == [{"type": "mcu_temp"}, {"type": "adc", "pin": 34, "name": "light"}]
    assert cfg["interval_ms"] == 2000
    assert files["main.py"] == (FIRMWARE / "main.py").read_bytes()
    assert files["ring.mpy"][:2] == b"M\x06"
    assert "ring.py" not in files and "old.mpy" not in files  # shadowing and leftover files removed
    assert files["notes.txt"] == b"the user's own file"
    assert set(json.loads(files[FLASHED_FILES])) == set(files) - {FLASHED_FILES, "notes.txt"}
    assert repl.removed[0] == "main.py"  # first, so a reset mid-copy boots a bare REPL
    assert not (repl.root / "fw" / "boot.json").exists()  # the boot layer runs the root's firmware

    listed = {d["id"]: d for d in server.get("/api/devices").json()}
    assert listed["flash-1"]["online"] and listed["flash-1"]["name"] == "Flash One"
    assert server.telemetry("flash-1")["flash_test"][0]["value"] == 1.5  # what the board sent arrived


def test_existing_device_gets_a_new_token_when_asked(server: Server, repl: FakeRepl) -> None:
    _, old = server.register("again-1")
    ui = Recorder(answer=True)
    plan = make_plan(options(server, repl, device_id="again-1", interactive=True))
    result = run(plan, ui)
    assert result.online_after_s is not None
    assert ui.questions and "again-1 is already registered" in ui.questions[0]
    new = json.loads(repl.files()["pulsewire.json"])["token"]
    assert new != old
    with pytest.raises(Exception, match="401"):  # the old token no longer opens the device channel
        from websockets.sync.client import connect

        connect(server.ws_base + "/ws/device", subprotocols=["pulsewire.v1"],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Bearer {old}"}).close()  # fmt: skip


def test_saying_no_leaves_the_device_alone(server: Server, repl: FakeRepl) -> None:
    server.register("kept-1")
    with pytest.raises(FlashError, match="kept-1 was left as it is"):
        run(make_plan(options(server, repl, device_id="kept-1", interactive=True)), Recorder(answer=False))
    assert repl.files() == {}


def test_given_token_registers_nothing(server: Server, repl: FakeRepl) -> None:
    device_id, token = server.register("given-1")
    before = device_ids(server)
    result = run(make_plan(options(server, repl, device_id=device_id, token=token, admin_key=None)), Recorder())
    assert result.online_after_s is not None
    assert device_ids(server) == before
    assert json.loads(repl.files()["pulsewire.json"])["token"] == token


def test_refused_token_is_explained(server: Server, repl: FakeRepl) -> None:
    server.register("refused-1")
    plan = make_plan(options(server, repl, device_id="refused-1", token="pwd_not_the_token", admin_key=None, wait_s=4))
    with pytest.raises(FlashError) as err:
        run(plan, Recorder())
    text = str(err.value)
    assert "refused-1 did not come online within 4 s" in text
    assert "the server refused the board's token" in text and "| link: token refused" in text


def test_wrong_wifi_password_is_surfaced(server: Server, new_repl: Callable[..., FakeRepl]) -> None:
    fake = new_repl(
        firmware=lines_firmware("wifi: joining home", "wifi: wrong password for home", "wifi: retrying in 1 s")
    )
    out = flash_cli("--port", fake.url, "--server", server.base, "--device-id", "wifi-1", "--admin-key",
                    server.admin_key, "--wifi-ssid", "home", "--wifi-password", "nope", "--wait-s", "3")  # fmt: skip
    assert out.returncode == 1
    assert "wifi-1 did not come online within 3 s" in out.stderr
    assert "the Wi-Fi password for 'home' is wrong" in out.stderr
    assert "board| wifi: wrong password for home" in out.stdout


def test_firmware_that_cannot_start_fails_fast(server: Server, new_repl: Callable[..., FakeRepl]) -> None:
    fake = new_repl(firmware=lines_firmware("pulsewire: cannot start: config: token: required"))
    plan = make_plan(options(server, fake, device_id="nostart-1", wait_s=60))
    with pytest.raises(FlashError, match="will not come online: the firmware did not start: config: token"):
        run(plan, Recorder())


def test_board_reading_another_mpy_version(server: Server, new_repl: Callable[..., FakeRepl]) -> None:
    fake = new_repl(mpy=5)
    with pytest.raises(FlashError, match=r"reads \.mpy v5, but mpy-cross writes \.mpy v6"):
        run(make_plan(options(server, fake, device_id="old-mp-1")), Recorder())
    assert "old-mp-1" not in device_ids(server) and fake.files() == {}


def test_folder_shadowing_a_module(server: Server, repl: FakeRepl) -> None:
    (repl.root / "ring").mkdir()
    with pytest.raises(FlashError, match="a folder ring/ that `import ring` finds before ring.mpy"):
        run(make_plan(options(server, repl, device_id="folder-1", wait_s=0)), Recorder())


def test_full_board_is_refused(server: Server, new_repl: Callable[..., FakeRepl]) -> None:
    fake = new_repl(free=16 * 1024)
    with pytest.raises(FlashError, match="not enough room on the board"):
        run(make_plan(options(server, fake, token=TOKEN, wait_s=0)), Recorder())


def test_only_the_manifests_files_reach_the_board(
    server: Server, new_repl: Callable[..., FakeRepl], tmp_path: Path
) -> None:
    """A file in the firmware folder that the manifest does not name is neither compiled, listed nor copied."""
    folder = tmp_path / "firmware"
    shutil.copytree(FIRMWARE, folder)
    (folder / "scratch.py").write_text("print('a module the manifest does not name')\n")
    (folder / "notes.txt").write_text("a developer's notes\n")
    manifest = firmware.manifest(folder)
    assert "scratch.py" not in manifest and "notes.txt" not in manifest
    fake = new_repl()
    plan = make_plan(options(server, fake, token=TOKEN, wait_s=0, firmware_dir=folder))

    shown = "\n".join(describe(plan, compile_firmware(folder)))
    assert f"pulsewire.json and the {len(manifest)} files of the firmware's manifest" in shown
    assert "scratch" not in shown and "notes.txt" not in shown

    ui = Recorder()
    result = run(plan, ui)
    written = {name.removesuffix(".py") + (".py" if name in ("main.py", "boot.py") else ".mpy") for name in manifest}
    on_board = set(fake.files())
    assert on_board == written | {"pulsewire.json", FLASHED_FILES}
    assert not {"scratch.py", "scratch.mpy", "notes.txt"} & on_board
    assert set(json.loads(fake.files()[FLASHED_FILES])) == written | {"pulsewire.json"}
    assert result.copied is not None and [f.source.name for f in result.copied.firmware if f.source] == manifest
    assert f"files:   pulsewire.json and the {len(manifest)} files of the firmware's manifest" in ui.text


def test_run_without_waiting(server: Server, repl: FakeRepl) -> None:
    ui = Recorder()
    result = run(make_plan(options(server, repl, token=TOKEN, wait_s=0)), ui)
    assert repl.wait_for_boots(1)  # the reset is sent as the flash ends; the stand-in answers it after
    assert result.online_after_s is None and repl.boots == 1
    assert "[5/5] resetting the board" in ui.text and "not waited for" in ui.text


def test_describe_lists_every_step(server: Server) -> None:
    plan = make_plan(options(server, "/dev/ttyUSB0", device_id="d", dry_run=True))
    lines = describe(plan, compile_firmware(FIRMWARE))
    assert [line[:5] for line in lines if line.startswith("[")] == [f"[{n}/7]" for n in range(1, 8)]


def test_api_errors_are_flash_errors(server: Server) -> None:
    from pulsewire_devkit.flash.api import Api

    assert Api(server.base).healthy()
    with pytest.raises(FlashError, match="refused the admin key"):
        Api(server.base, "pwa_wrong").register("api-1", None)
    assert httpx.get(server.base + "/api/devices").status_code == 200


@contextlib.contextmanager
def flash_on_a_terminal(*args: str) -> Iterator[tuple[int, int]]:
    """`pulsewire flash ARGS` in a child whose terminal is a pty: (its pid, the pty). A child still
    running when the block ends (an assertion failed, the test timed out) is killed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEWIRE_")}
    pid, fd = pty.fork()
    if pid == 0:  # the child: pulsewire flash with the pty as its terminal
        os.execve(sys.executable, [sys.executable, "-m", "pulsewire", "flash", *args], env)
    try:
        yield pid, fd
    finally:
        with contextlib.suppress(ChildProcessError):  # the test has reaped it already
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        os.close(fd)


def test_questions_on_a_terminal(server: Server, repl: FakeRepl) -> None:
    """On a terminal the Wi-Fi password is asked for (hidden) and an existing id's rotation too."""
    server.register("tty-1")
    args = ["--port", repl.url, "--server", server.base, "--device-id", "tty-1", "--admin-key", server.admin_key,
            "--wifi-ssid", "home", "--wait-s", "20"]  # fmt: skip
    seen = b""
    answers = [(b"Wi-Fi password for home", PASSWORD.encode() + b"\r"), (b"Give it a new token?", b"y\r")]
    with flash_on_a_terminal(*args) as (pid, fd):
        while True:
            ready, _, _ = select.select([fd], [], [], 60)
            assert ready, seen.decode(errors="replace")
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child has gone: the pty is closed
                break
            if not chunk:
                break
            seen += chunk
            if answers and answers[0][0] in seen:
                os.write(fd, answers.pop(0)[1])
        _, status = os.waitpid(pid, 0)
    text = seen.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert not answers, text
    assert PASSWORD not in text  # typed, not echoed
    assert "tty-1 is online" in text
    assert json.loads(repl.files()["pulsewire.json"])["wifi"] == {"ssid": "home", "password": PASSWORD}
