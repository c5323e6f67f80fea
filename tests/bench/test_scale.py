"""Smoke test of bench/scale.py: both measurements run end to end, with tiny numbers, and report figures.

It checks that the benchmark works and that its answers were verified, never how fast or lean the
server is: that is for a person reading the benchmark's table, not for an assertion on a shared machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.env import ROOT

BENCH = ROOT / "bench" / "scale.py"


def _positive_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


@pytest.mark.timeout(120)
def test_scale_benchmark_runs_and_reports_figures(tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(BENCH),
        *("--connections", "50", "--idle-seconds", "0.5", "--settle-seconds", "0.5"),
        *("--readings", "200000", "--dense-readings", "20000", "--repeats", "3"),
        *("--work-dir", str(tmp_path), "--json"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, f"benchmark failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
    report = json.loads(done.stdout)

    idle = report["idle"]
    assert idle["ok"] and idle["verdict"] in ("pass", "short"), idle
    assert idle["connections"] == 50 and idle["server_connections_gauge"] == 50 and idle["dropped"] == 0, idle
    for figure in ("connect_s", "rss_before_mb", "rss_after_mb", "kb_per_connection"):
        assert _positive_number(idle[figure]), (figure, idle)
    assert idle["rss_after_mb"] >= idle["rss_before_mb"], idle

    dayview = report["dayview"]
    assert dayview["ok"] and not dayview["cached"], dayview
    assert dayview["fleet_devices"] == 3 and dayview["stored_readings"] == 3 * 86_400 + 20_000, dayview
    views = {view["name"]: view for view in dayview["views"]}
    assert set(views) == {"fleet", "dense"}, dayview["views"]
    assert views["fleet"]["buckets"] == 1440 and views["fleet"]["verdict"] in ("pass", "short"), views["fleet"]
    for view in views.values():
        assert 0 < view["min_ms"] <= view["p50_ms"] <= view["p95_ms"] <= view["max_ms"], view
        assert _positive_number(view["sql_p50_ms"]), view
    assert Path(dayview["database"], "manifest.json").is_file(), "the database was not cached"
    assert "day view, fleet" in done.stderr and "server RSS per idle connection" in done.stderr
