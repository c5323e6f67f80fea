"""docs/deployment.md's systemd unit and environment file, as printed.

The tests run without systemd as PID 1, so the unit is not started: `systemd-analyze verify` checks
it (every key known, the command executable) and `systemd-analyze security --offline` rates its
hardening; the unit's command then runs with the environment file's settings and serves.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.env import missing
from tests.support.server import free_port
from tests.support.webservers import config_block, env_file, fill

MAX_EXPOSURE = 2.5  # systemd-analyze security: 0 (locked down) .. 10 (exposed)
DOC_COMMAND = "/opt/pulsewire/bin/pulsewire"
DOC_ENV_FILE = "/etc/pulsewire/pulsewire.env"


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        missing("systemd-analyze is not installed", "tests/run installs it: apt-get install -y systemd")
    assert found is not None
    return found


def _unit(tmp_path: Path) -> Path:
    env = tmp_path / "pulsewire.env"
    env.write_text(config_block("pulsewire.env"))
    command = Path(sys.executable).parent / "pulsewire"
    unit = tmp_path / "pulsewire.service"
    unit.write_text(fill(config_block("systemd"), {DOC_COMMAND: str(command), DOC_ENV_FILE: str(env)}))
    return unit


def test_the_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    unit = _unit(tmp_path)
    text = unit.read_text()
    for line in (
        "User=pulsewire",
        "StateDirectory=pulsewire",
        "EnvironmentFile=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ):
        assert line in text, line
    verify = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and not verify.stderr.strip() and not verify.stdout.strip(), verify.stderr
    security = subprocess.run(
        [analyze, "security", "--offline=true", str(unit)], capture_output=True, text=True, timeout=60
    )
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    assert found is not None, security.stdout + security.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, security.stdout


def test_the_unit_s_command_serves_with_the_environment_file(tmp_path: Path) -> None:
    exec_start = re.search(r"^ExecStart=(.+)$", config_block("systemd"), re.M)
    assert exec_start is not None
    argv = shlex.split(exec_start.group(1))
    assert argv[0] == DOC_COMMAND
    port = free_port()
    settings = env_file(
        fill(
            config_block("pulsewire.env"),
            {"PULSEWIRE_PORT=8000": f"PULSEWIRE_PORT={port}", "/var/lib/pulsewire": str(tmp_path / "state")},
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEWIRE_")} | settings
    with open(tmp_path / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "pulsewire"), *argv[1:]], env=env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        check = httpx.get(
            f"http://127.0.0.1:{port}/api/admin/check",
            headers={"Authorization": f"Bearer {settings['PULSEWIRE_ADMIN_KEY']}"},
        )
        assert check.status_code == 200, (check.text, (tmp_path / "server.log").read_text())
        page = httpx.get(f"http://127.0.0.1:{port}/docs")
        assert "/pulsewire/openapi.json" in page.text  # root_path from the file
    finally:
        proc.terminate()  # SIGTERM, what systemctl stop sends: the same clean shutdown as Ctrl-C, then the
        # signal raised again, which systemd counts as a clean stop
        assert proc.wait(15) in (0, -signal.SIGTERM)
    assert "pulsewire stopped" in (tmp_path / "server.log").read_text()
