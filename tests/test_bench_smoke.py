"""Smoke test of bench/ingest.py: the benchmark runs end to end and reports figures.

It checks that the benchmark works, never how fast the server is: speed is for a person reading
the benchmark's table, not for an assertion on a shared CI machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "ingest.py"
IN_CI = os.environ.get("CI", "").lower() == "true"
NO_NODE = shutil.which("node") is None


@pytest.mark.skipif(NO_NODE and not IN_CI, reason="node is not on PATH: the benchmark's load generator needs Node.js")
@pytest.mark.timeout(900)  # a first run also does `npm install` for the load generator
def test_benchmark_runs_and_reports_figures() -> None:
    command = [sys.executable, str(BENCH), "--devices", "2", "--batch", "5", "--seconds", "1", "--rate", "50", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=840)
    assert done.returncode == 0, f"benchmark failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
    report = json.loads(done.stdout)

    runs = {run["kind"]: run for run in report["runs"]}
    assert set(runs) == {"throughput", "latency"}, report["runs"]
    throughput, latency = runs["throughput"], runs["latency"]
    assert throughput["batch"] == 5 and throughput["devices"] == 2
    assert throughput["acked"] > 0, throughput
    assert throughput["acked_per_s"] > 0, throughput
    assert latency["acked"] > 0, latency
    for figure in ("live_p50_ms", "live_p99_ms"):
        assert isinstance(latency[figure], (int, float)) and not isinstance(latency[figure], bool), latency
    assert isinstance(throughput["server_peak_rss_mb"], (int, float)) and throughput["server_peak_rss_mb"] > 0
