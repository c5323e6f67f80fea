"""Smoke test of bench/storage.py: a tiny fleet goes through the device channel, every query's answer is
checked by the benchmark itself, and every figure it prints is there and sane.

It checks that the benchmark works, never how small or fast the storage is: that is for a person
reading the benchmark's table, not for an assertion on a shared machine.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.env import ROOT

BENCH = ROOT / "bench" / "storage.py"
QUERIES = ("raw_hour", "day_1m", "week_15m", "year_1h", "dashboard_week", "day_view")
VALUES = 1 * 2 * 3600 * 4  # 1 board, 2 hours at 1 Hz, 4 metrics


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@pytest.mark.timeout(120)
def test_storage_benchmark_runs_and_reports_every_figure() -> None:
    command = [sys.executable, str(BENCH), "--devices", "1", "--hours", "2", "--queries", "3", "--no-baseline"]
    command.append("--json")
    done = subprocess.run(command, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, f"benchmark failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
    report = json.loads(done.stdout)

    assert report["config"]["stored_values"] == VALUES
    assert list(report["revisions"]) == ["current"], "--no-baseline runs the current tree alone"
    current = report["revisions"]["current"]
    (run,) = current["runs"]
    assert run["ok"], run["failure"]
    assert run["ingest"]["values"] == VALUES and _positive(run["ingest"]["values_per_s"]), run["ingest"]
    assert run["stored_values"] == VALUES and _positive(run["bytes_on_disk"]), run
    assert 0 < run["bytes_per_value"] < 200, run["bytes_per_value"]
    summary = current["summary"]
    if current["compacts"]:
        assert run["compaction"]["values"] == VALUES and _positive(run["compaction"]["values_per_s"]), run
        assert run["stats"]["resolutions"]["raw"]["values"] == VALUES, run["stats"]
        assert 0 < run["bytes_per_value_vacuumed"] <= run["bytes_per_value"], run
    else:  # the release before compact storage: measured as stored
        assert run["compaction"] is None and summary["compaction_values_per_s"]["median"] is None
    for name in QUERIES:
        timing = run["queries"][name]
        assert len(timing["times_ms"]) == 3 and all(_positive(ms) for ms in timing["times_ms"]), timing
        assert timing["points"] > 0, timing
        figure = summary[name]
        assert 0 < figure["min"] <= figure["median"] <= figure["max"], (name, figure)
    assert run["queries"]["raw_hour"]["points"] == 3600
    assert run["queries"]["day_view"]["points"] == 4 * 120  # 2 hours of 1-minute buckets, 4 metrics
    assert {t["figure"] for t in report["targets"]} == {"bytes_per_value", "dashboard_week", "year_1h", "day_view"}
    assert all(t["met"] in (True, False) for t in report["targets"]), report["targets"]
    assert "bytes per stored value on disk" in done.stderr and "day view" in done.stderr, done.stderr[-3000:]
