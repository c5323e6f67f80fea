"""The simulated board itself (pulsewire_devkit.simboard): its hardware.py, streams, TLS, watchdog, resets, exits.

Small MicroPython programs stand in for main.py here; tests/firmware/ runs the firmware.
"""

from __future__ import annotations

import ast
import datetime
import gc
import hashlib
import ipaddress
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pulsewire_devkit.simboard.runner import EXIT_RAISED, EXIT_RESET, EXIT_STOPPED, SimBoard
from tests.support.env import ROOT
from tests.support.simboard import FIRMWARE, board, require_node

SIM_HARDWARE = ROOT / "server" / "pulsewire_devkit" / "simboard" / "mpy" / "hardware.py"


# --- hardware.py ---------------------------------------------------------------------------------


def public_api(path: Path) -> tuple[dict[str, tuple[list[str], int]], set[str], set[str]]:
    """(functions with their parameters and number of defaults, other callables, constants)."""
    functions: dict[str, tuple[list[str], int]] = {}
    callables: set[str] = set()
    constants: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            args = node.args
            functions[node.name] = ([a.arg for a in args.posonlyargs + args.args + args.kwonlyargs], len(args.defaults))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            callables.add(node.name)
        elif isinstance(node, ast.ImportFrom):
            callables.update(a.asname or a.name for a in node.names if not a.name.startswith("_"))
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id.isupper() and not target.id.startswith("_"):
                    constants.add(target.id)
    return functions, callables - {"TYPE_CHECKING"}, constants - {"TYPE_CHECKING"}


def test_simulated_hardware_py_has_the_firmware_hardware_api() -> None:
    real_functions, real_callables, real_constants = public_api(FIRMWARE / "hardware.py")
    sim_functions, sim_callables, sim_constants = public_api(SIM_HARDWARE)
    assert real_functions and real_constants, "device/firmware/hardware.py defines nothing?"
    assert sim_functions == real_functions
    assert sim_callables == real_callables  # sha1, which the real one takes from hashlib
    assert sim_constants == real_constants


def test_hardware_fakes_answer_like_the_hardware() -> None:
    program = """
import binascii, hashlib
import hardware
print("sha1", binascii.hexlify(hardware.sha1(b"abc").digest()).decode())
print("mcu", hardware.mcu_temperature(), hardware.mcu_temperature(), hardware.mcu_temperature())
print("wifi", hardware.wifi_connected(), hardware.wifi_status() == hardware.STAT_GOT_IP, hardware.wifi_rssi())
print("clock", hardware.rtc_epoch_ms(), hardware.ntp_sync("pool.ntp.org"))
print("uid", binascii.hexlify(hardware.unique_id()).decode(), "cause", hardware.reset_cause())
print("adc", hardware.adc(34).read_uv())
d = hardware.dht22(4)
d.measure()
print("dht22", d.temperature(), d.humidity())
import bme280
t, p, h = bme280.BME280(hardware.i2c(21, 22)).measure()
print("bme280 %.2f %.1f %.1f" % (t, p, h))
"""
    with board(None, files={"/main.py": program, "/bme280.py": (FIRMWARE / "bme280.py").read_bytes()}) as sim:
        assert sim.wait_exit() == EXIT_STOPPED
    out = sim.output()
    assert "sha1 " + hashlib.sha1(b"abc").hexdigest() in out
    assert "mcu 1.0 2.0 3.0" in out  # a count of readings: each one unique
    assert "wifi True True -60" in out
    assert "clock 0 False" in out  # no RTC, no NTP: the firmware must take the server's clock
    assert "uid 240ac4000001 cause 1" in out
    assert "adc 1650000" in out and "dht22 21.5 40.0" in out
    assert "bme280 25.08 1006.5 55.0" in out  # the datasheet's calibration example


def test_a_failing_sensor_raises_oserror_and_heals() -> None:
    program = """
import asyncio, hardware
async def main():
    print("ready")
    while True:
        try:
            print("read", hardware.mcu_temperature())
        except OSError as exc:
            print("failed", exc.args[0])
        try:
            hardware.dht22(4).measure()
            print("dht22 ok")
        except OSError:
            print("dht22 failed")
        await asyncio.sleep_ms(50)
asyncio.run(main())
"""
    with board(None, files={"/main.py": program}) as sim:
        sim.wait_for_line("ready")
        since = sim.mark()
        sim.fail_sensor("mcu_temp")
        sim.wait_for_line("failed 110", since=since)
        assert "dht22 ok" in sim.wait_for_line("dht22", since=sim.mark())  # only the named sensor fails
        taken = sim.status()["readings"]
        since = sim.mark()
        sim.heal_sensor()
        assert sim.wait_for_line("read ", since=since) == f"read {taken + 1}.0"  # failed reads count nothing


# --- main.py, exits, resets, watchdog --------------------------------------------------------


def test_main_py_runs_as_main_and_the_board_halts_when_it_returns() -> None:
    with board(None, files={"/main.py": "print('hello from', __name__)\n"}) as sim:
        assert sim.wait_exit() == EXIT_STOPPED
    assert "hello from __main__" in sim.lines
    assert "pwsim: halted: main.py returned" in sim.lines


def test_an_exception_ending_main_is_printed_as_the_board_prints_it() -> None:
    program = "import asyncio\nasync def main():\n    raise ValueError('boom')\nasyncio.run(main())\n"
    with board(None, files={"/main.py": program}) as sim:
        assert sim.wait_exit() == EXIT_RAISED
    out = sim.output()
    assert 'File "main.py", line 3, in main' in out and "ValueError: boom" in out
    assert "pwsim: halted: asyncio.run() raised ValueError('boom',)" in out


WATCHDOG = """
import asyncio, hardware
print("boot, reset cause", hardware.reset_cause())
wdt = hardware.watchdog(300)
async def main():
    for _ in range(6):
        wdt.feed()
        await asyncio.sleep_ms(100)
    print("fed for 600 ms; stopping")
    await asyncio.sleep_ms(5000)
asyncio.run(main())
"""


def test_a_watchdog_not_fed_resets_the_board() -> None:
    with board(None, files={"/main.py": WATCHDOG}) as sim:
        assert sim.wait_exit() == EXIT_RESET
    assert sim.lines.index("fed for 600 ms; stopping") < sim.lines.index("pwsim: reset (watchdog not fed for 300 ms)")


def test_with_reboot_a_reset_boots_the_board_again_with_its_files_and_counters() -> None:
    with board(None, files={"/main.py": WATCHDOG}, reboot=True) as sim:
        sim.wait_for_line("boot, reset cause 1")
        sim.wait_for_line("boot, reset cause 3", timeout=15)  # 3: WDT_RESET
        since = sim.mark()
        sim.reset()
        sim.wait_for_line("boot, reset cause 2", since=since)  # 2: HARD_RESET
        assert sim.status()["boots"] == 3


def test_machine_reset_from_a_task_ends_everything_at_once() -> None:
    program = """
import asyncio, hardware
async def chatter():
    while True:
        print("tick")
        await asyncio.sleep_ms(20)
async def main():
    asyncio.create_task(chatter())
    await asyncio.sleep_ms(100)
    hardware.reset()
    print("after reset")
asyncio.run(main())
"""
    with board(None, files={"/main.py": program}) as sim:
        assert sim.wait_exit() == EXIT_RESET
    assert "tick" in sim.lines and "after reset" not in sim.lines
    assert sim.lines[-1] == "pwsim: reset (machine.reset())"


# --- streams -------------------------------------------------------------------------------------


class _Echo(socketserver.BaseRequestHandler):
    """Sends back what arrives; closes after echoing b"bye"."""

    def handle(self) -> None:
        conn: socket.socket = self.request
        while data := conn.recv(4096):
            conn.sendall(data)
            if data.endswith(b"bye"):
                break


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Echo)
        self.tls = tls

    def get_request(self) -> tuple[Any, Any]:
        conn, addr = super().get_request()
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True)
        return conn, addr


def _serve(tls: ssl.SSLContext | None = None) -> Iterator[int]:
    server = _Server(tls)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def echo_port() -> Iterator[int]:
    yield from _serve()


STREAMS = """
import asyncio


async def echo(r, w, data):
    w.write(memoryview(data))
    data[0] ^= 0xFF  # write() must have copied the bytes already
    await w.drain()
    buf = bytearray(len(data) + 10)
    got = 0
    while got < len(data):
        got += await r.readinto(memoryview(buf)[got:])
    data[0] ^= 0xFF
    return got == len(data) and buf[:got] == data


async def main():
    r, w = await asyncio.open_connection("127.0.0.1", PORT)
    print("echo 256:", await echo(r, w, bytearray(range(256))))
    print("echo 70000:", await echo(r, w, bytearray(48 + i % 10 for i in range(70000))))
    w.write(b"bye")
    await w.drain()
    print("read:", await r.read(3), "then at the end:", await r.readinto(bytearray(4)))
    w.close()
    await w.wait_closed()

    r, w = await asyncio.open_connection("127.0.0.1", PORT)
    print("waiting for the cut")
    try:
        await r.readinto(bytearray(4))
    except OSError as exc:
        print("read after the cut:", exc.args[0])
    try:
        w.write(b"x")
    except OSError as exc:
        print("write after the cut:", exc.args[0])
    await w.wait_closed()

    r, w = await asyncio.open_connection("127.0.0.1", PORT)
    buf = bytearray(8)
    try:
        await asyncio.wait_for_ms(r.readinto(buf), 100)
    except asyncio.TimeoutError:
        print("read timed out")
    w.write(b"late")
    await w.drain()
    n = await r.readinto(buf)
    print("then read:", bytes(buf[:n]))  # all of it: the cancelled read took nothing
    await w.wait_closed()

    try:  # a TLS server that never answers the handshake
        await asyncio.wait_for_ms(asyncio.open_connection("127.0.0.1", SILENT, ssl=True), 200)
    except asyncio.TimeoutError:
        print("connect timed out")
    try:
        await asyncio.open_connection("no-such-host.invalid", 80)
    except OSError as exc:
        print("unknown host:", exc.args[0])

    print("waiting for the pause")
    while True:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", PORT)
        except OSError as exc:
            print("refused:", exc.args[0])
            break
        await w.wait_closed()
        await asyncio.sleep_ms(20)
    while True:
        await asyncio.sleep_ms(20)
        try:
            r, w = await asyncio.open_connection("127.0.0.1", PORT)
        except OSError:
            continue
        await w.wait_closed()
        print("connected again")
        break


asyncio.run(main())
"""


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port whose connections the kernel accepts and nobody ever answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_streams_carry_bytes_and_fail_as_a_board_s_sockets_do(echo_port: int, silent_port: int) -> None:
    program = f"PORT = {echo_port}\nSILENT = {silent_port}\n" + STREAMS
    with board(None, files={"/main.py": program}, stay=True) as sim:
        sim.wait_for_line("waiting for the cut", timeout=20)
        sim.cut()
        sim.wait_for_line("waiting for the pause", timeout=20)
        sim.pause_net()
        sim.wait_for_line("refused:")
        sim.resume_net()
        sim.wait_for_line("connected again")
        sim.wait_for_line("pwsim: halted")
        assert sim.status()["sockets"] == 0  # every socket closed, the timed-out one too
    lines = sim.lines
    for expected in (
        "echo 256: True",
        "echo 70000: True",
        "read: b'bye' then at the end: 0",
        "read after the cut: 104",  # ECONNRESET
        "write after the cut: 104",
        "read timed out",
        "then read: b'late'",
        "connect timed out",
        "unknown host: -202",  # what getaddrinfo raises on an ESP32
        "refused: 111",  # ECONNREFUSED
    ):
        assert expected in lines, expected


# --- TLS -----------------------------------------------------------------------------------------


def _self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


TLS = """
import asyncio, hardware

async def hello(ca):
    ctx = hardware.tls_context(ca)
    try:
        r, w = await asyncio.open_connection("127.0.0.1", %d, ssl=ctx, server_hostname="127.0.0.1")
    except OSError as exc:
        return "refused %%d" %% exc.args[0]
    w.write(b"bye")
    await w.drain()
    got = await r.read(3)
    await w.wait_closed()
    return got.decode()

async def main():
    print("right CA:", await hello("server.pem"))
    print("other CA:", await hello("other.pem"))
    print("no CA:", await hello(""))

asyncio.run(main())
"""


def test_tls_verifies_the_server_against_the_configured_ca(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, "server")
    other, _ = _self_signed(tmp_path, "other")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    for port in _serve(tls):
        files = {"/main.py": TLS % port, "/server.pem": cert.read_bytes(), "/other.pem": other.read_bytes()}
        with board(None, files=files) as sim:
            assert sim.wait_exit() == EXIT_STOPPED
    assert "right CA: bye" in sim.lines
    assert "other CA: refused -9984" in sim.lines  # mbedTLS: certificate verification failed
    assert "no CA: bye" in sim.lines  # no CA configured: encrypted, not verified (as on the board)


def test_heap_reports_the_interpreter_s_allocation() -> None:
    program = "import asyncio\nkeep = bytearray(50000)\nprint('started')\nasyncio.run(asyncio.sleep(30))\n"
    with board(None, files={"/main.py": program}) as sim:
        sim.wait_for_line("started")
        heap = sim.heap()
    assert heap["alloc"] > 50000 and heap["free"] > 0


def test_the_firmware_dir_is_the_board_s_filesystem() -> None:
    program = "import os\nprint(sorted(n for n in os.listdir('/') if n.endswith('.py')))\n"
    with board(FIRMWARE, files={"/main.py": program}) as sim:
        assert sim.wait_exit() == EXIT_STOPPED
    listed = next(line for line in sim.lines if line.startswith("["))
    assert ast.literal_eval(listed) == sorted(p.name for p in FIRMWARE.glob("*.py"))


# --- the Node process ------------------------------------------------------------------------------

FOREVER = "import asyncio\nprint('up')\nasyncio.run(asyncio.sleep(600))\n"


def test_a_failing_test_leaves_no_node_process_running() -> None:
    with pytest.raises(RuntimeError, match="the test failed"), board(None, files={"/main.py": FOREVER}) as sim:
        sim.wait_for_line("up")
        raise RuntimeError("the test failed")
    assert sim.proc is not None and sim.proc.poll() is not None  # ended, not left running


def test_a_board_dropped_without_stop_takes_its_node_process_with_it() -> None:
    require_node()
    sim = SimBoard(None, files={"/main.py": FOREVER}).start()
    sim.wait_for_line("up")
    proc = sim.proc
    assert proc is not None and proc.poll() is None
    del sim
    gc.collect()
    assert proc.wait(10) is not None
