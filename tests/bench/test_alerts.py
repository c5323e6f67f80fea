"""Smoke test of bench/alerts.py: with tiny numbers, crossings reach the webhook receiver signed, and every
figure the benchmark prints is there.

It checks that the benchmark works, never how fast: that is for a person reading its table, not for an
assertion on a shared machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.support.env import IN_CI, ROOT

BENCH = ROOT / "bench" / "alerts.py"
NO_NODE = shutil.which("node") is None


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


@pytest.mark.skipif(NO_NODE and not IN_CI, reason="node is not on PATH: the benchmark's load generator needs Node.js")
@pytest.mark.timeout(900)  # a first run also does `npm install` for the load generator
def test_alerts_benchmark_measures_crossings_and_the_cost_of_rules() -> None:
    command = [
        sys.executable,
        str(BENCH),
        *("--devices", "4", "--rules-per-device", "10", "--star-rules", "2", "--crossing-devices", "2"),
        *("--rate", "100", "--cross-every", "5", "--seconds", "3", "--batch", "5", "--saturation-seconds", "1"),
        *("--rounds", "1", "--json"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=840)
    assert done.returncode == 0, f"benchmark failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
    report = json.loads(done.stdout)

    assert report["rule_count"] == 4 * 10  # 38 on one device each, 2 on every device
    runs = {(r["kind"], r["rules"]): r for r in report["runs"]}
    assert set(runs) == {("paced", True), ("paced", False), ("saturation", True), ("saturation", False)}
    assert [r["rules"] for r in report["runs"]] == [True, False, True, False], "with and without interleaved"
    for run in runs.values():
        assert run["ok"], run["failure"]
        assert run["acked"] > 0 and run["acked_per_s"] > 0 and _number(run["cpu_us_per_reading"]), run
        assert run["server_log"] == [], run["server_log"]

    paced = runs[("paced", True)]
    assert paced["crossings"] >= 2, paced
    assert paced["webhooks"] >= paced["crossings"] + paced["clearings"], "a firing and a resolved per crossing"
    assert paced["webhooks_verified"] == paced["webhooks"] and paced["keys_agree"], paced
    assert paced["webhooks_unmatched"] == 0 and len(paced["firing_ms"]) == paced["crossings"], paced
    assert 0 < paced["firing_p50_ms"] <= paced["firing_p99_ms"] <= paced["firing_max_ms"], paced
    assert runs[("paced", False)]["webhooks"] == 0  # no rules, nothing sent

    latency = report["summary"]["latency"]["pooled"]
    assert latency["crossings"] == paced["crossings"] and _number(latency["firing_p99_ms"]), latency
    cost = report["summary"]["cost"]
    assert set(cost) == {"paced b1", "saturation b5"}, cost
    for entry in cost.values():
        assert _number(entry["throughput_ratio_of_medians"]) and _number(entry["cpu_ratio_of_medians"]), entry
    assert {t["met"] for t in report["targets"]} <= {True, False}, report["targets"]
    table = done.stderr
    assert "Crossing -> webhook" in table and "Cost on ingest" in table and "signature verified" in table, table[-3000:]
