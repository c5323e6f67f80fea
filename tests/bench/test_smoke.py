"""Smoke tests of bench/ingest.py, bench/peers.py and bench/dashboard.py: each benchmark runs end to end and reports figures.

They check that the benchmarks work, never how fast the server or the page is: speed is for a person
reading the benchmark's table, not for an assertion on a shared CI machine.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.env import IN_CI, ROOT

BENCH = ROOT / "bench" / "ingest.py"
DASHBOARD_BENCH = BENCH.with_name("dashboard.py")
PEERS_BENCH = BENCH.with_name("peers.py")
NO_NODE = shutil.which("node") is None
NO_MOSQUITTO = shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists()
# The dashboard benchmark drives Debian's Chromium through the playwright package (no `playwright install`).
NO_BROWSER = not Path("/usr/bin/chromium").exists() or importlib.util.find_spec("playwright") is None


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
    assert "acked readings/s" in done.stderr and "latency @ 50/s" in done.stderr, done.stderr[-4000:]  # the table


@pytest.mark.skipif(
    (NO_NODE or NO_MOSQUITTO) and not IN_CI,
    reason="the peers benchmark needs Node.js (load generator, ws relay) and mosquitto (apt-get install mosquitto)",
)
@pytest.mark.timeout(900)  # a first run also does `npm install` for the load generator
def test_peers_benchmark_runs_every_peer_and_compares_with_mosquitto() -> None:
    command = [sys.executable, str(PEERS_BENCH), "--devices", "3", "--seconds", "1", "--rate", "60", "--repeat", "2"]
    command.append("--json")
    done = subprocess.run(command, capture_output=True, text=True, timeout=840)
    assert done.returncode == 0, f"benchmark failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
    report = json.loads(done.stdout)

    assert list(report["peers"]) == ["pulsewire", "wsrelay", "mosquitto", "naive"]
    for name, peer in report["peers"].items():
        assert set(peer["runs"]) == {"batch1", "batch20", "latency"}, name
        for key, runs in peer["runs"].items():
            assert len(runs) == 2, (name, key)
            for run in runs:
                assert run["ok"], f"{name} {key}: {run['failure']}"
                assert run["connected"] == 3 and run["acked"] > 0 and run["acked_per_s"] > 0, (name, key, run)
                assert run["live_got"] > 0 and run["live_p99_ms"] >= run["live_p50_ms"] >= 0, (name, key, run)
            median = peer["medians"][key]
            assert median["acked_per_s"] == min(r["acked_per_s"] for r in runs), (name, key)  # the lower of two
            assert median["live_p99_ms"] == max(r["live_p99_ms"] for r in runs), (name, key)  # the higher of two
        assert peer["peak_rss_mb"] > 0, name
    assert all(
        run["server_metrics"]["committed_readings"] > 0 for run in report["peers"]["pulsewire"]["runs"]["batch1"]
    )
    targets = {t["target"]: t for t in report["targets"]}
    assert len(targets) == 4 and all(t["goal"] is not None and t["met"] in (True, False) for t in targets.values())
    table = done.stderr
    for label in ("Pulsewire (SQLite)", "Node ws relay", "Mosquitto QoS 1", "plain FastAPI"):
        assert label in table, table[-4000:]
    assert "x1.00" in table, "Mosquitto's own ratios are 1"
    assert "Medians of 2 runs each." in table


@pytest.mark.skipif(
    NO_BROWSER and not IN_CI,
    reason="needs /usr/bin/chromium (apt-get install -y chromium) and the playwright package",
)
@pytest.mark.timeout(300)
def test_dashboard_benchmark_runs_and_reports_figures() -> None:
    command = [
        sys.executable,
        str(DASHBOARD_BENCH),
        *("--devices", "3", "--rate", "200", "--values", "2", "--warmup", "1", "--seconds", "2.5", "--json"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"benchmark failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
    report = json.loads(done.stdout)
    assert report["machine"]["chromium"] and report["config"]["rate"] == 200
    assert "frames/s" in done.stderr and "long tasks" in done.stderr, done.stderr[-4000:]

    scenarios = {s["name"]: s for s in report["scenarios"]}
    assert set(scenarios) == {"overview", "device"}, report["scenarios"]
    for name, s in scenarios.items():
        assert s["ok"], f"{name}: {s['failure']}"
        assert s["page_errors"] == [], s["page_errors"]
        assert s["acked"] > 0 and s["acked_per_s"] > 0, s
        assert s["frames"] > 0 and 0 < s["fps"] <= 250, s
        assert 0 < s["frame_p50_ms"] <= s["frame_p95_ms"] <= s["frame_p99_ms"] <= s["frame_max_ms"], s
        assert s["longtasks"] >= 0 and s["longtask_total_ms"] >= 0, s
        assert s["readings_received"] > 0 and s["live_messages"] > 0, s
        assert s["live_sockets_opened"] >= 1, s
        assert s["page_updated"] is True, s["updated_detail"]
        assert s["heap_after_gc_mb_start"] > 0 and s["heap_after_gc_mb_end"] > 0, s
        assert s["main_thread_busy_pct"] is not None and s["main_thread_busy_pct"] >= 0, s
