"""Smoke test of bench/hygiene.py: it runs end to end at small numbers and reports its figures.

It checks that the benchmark works and that the server closes what it should; how fast is for a
person reading the table, not for an assertion on a shared CI machine.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.env import ROOT

BENCH = ROOT / "bench" / "hygiene.py"


@pytest.mark.timeout(300)
def test_hygiene_benchmark_runs_and_reports_figures() -> None:
    command = [sys.executable, str(BENCH), "--half-open", "12", "--helloless", "6", "--seconds", "3", "--sources", "3"]
    command += [
        "--open-files-limit",
        "1024",
        "--server-flag=--handshake-timeout-s=1",
        "--server-flag=--hello-timeout-s=1",
    ]
    command.append("--json")
    done = subprocess.run(command, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, f"benchmark failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
    phases = json.loads(done.stdout)["phases"]
    assert [p["metrics"]["pulsewire_connection_limit"] for p in phases][1] == 896  # 1,024 files less the reserve
    for phase in phases:
        for kind in ("half_open", "helloless"):
            closed = phase["attack"][kind]["closed_after_s"]
            assert closed["count"] >= 6, phase["attack"]
            assert 0.9 <= closed["median"] <= 2.5, phase["attack"]  # the 1 s deadlines, not never
        assert set(phase["attack"]["close_codes"]) == {"1008"}
        assert phase["metrics"]["pulsewire_handshake_timeouts_total"] >= 12
        assert phase["metrics"]["pulsewire_hello_timeouts_total"] >= 6
        assert phase["device"]["connect_ms"]["count"] >= 1 and phase["device"]["ack_ms"]["count"] >= 5
        assert phase["device"]["failures"] == 0
        assert phase["server"]["open_files"]["max"] > 0 and phase["server"]["rss_mb"]["max"] > 0
        assert phase["server_log_errors"] == []
    assert "closed after median" in done.stderr  # the table
