"""bench/cluster.py: its CPU accounting read on bytes, and a smoke run with --quick that prints every figure.

The smoke run checks that the benchmark works, never how fast: that is for a person reading its
table, not for an assertion on a shared machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from bench.harness import proctime
from tests.support.env import IN_CI, ROOT, missing

BENCH = ROOT / "bench" / "cluster.py"
NO_NODE = shutil.which("node") is None


def test_cpu_ticks_are_read_after_a_command_name_with_spaces_and_parentheses() -> None:
    # proc(5): pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime ...
    stat = b"4242 (pulsewire: a (b) c) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 56 7 8 20 0 3 0 100 0 0\n"
    assert proctime.stat_cpu_ticks(stat) == 1234 + 56


def test_cpu_of_a_part_counts_processes_started_during_the_load_and_says_which_ended() -> None:
    before = {1: 10.0, 2: 5.0, 3: 1.0}
    after = {1: 12.5, 2: 5.25, 4: 0.5}  # 3 ended, 4 started
    used = proctime.used(before, after)
    assert used.seconds == pytest.approx(2.5 + 0.25 + 0.5)
    assert (used.processes, used.ended) == (4, 1)


def test_this_process_and_its_child_are_found_and_their_cpu_grows() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in proctime.with_descendants(os.getpid())
        first = proctime.cpu_seconds(os.getpid())
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:
            pass
        second = proctime.cpu_seconds(os.getpid())
        assert first is not None and second is not None and second - first >= 0.2
    finally:
        child.kill()
        child.wait()
    assert proctime.cpu_seconds(child.pid) is None


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


@pytest.mark.postgres
@pytest.mark.skipif(NO_NODE and not IN_CI, reason="node is not on PATH: the benchmark's load generator needs Node.js")
@pytest.mark.timeout(900)  # a first run also does `npm install` for the load generator
def test_cluster_benchmark_quick_prints_every_figure(postgres_available: None) -> None:
    if shutil.which("redis-server") is None:
        missing("redis-server is not installed", "tests/run installs redis-server")
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json"], capture_output=True, text=True, timeout=840
    )
    assert done.returncode == 0, f"benchmark failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
    report = json.loads(done.stdout)

    runs = report["runs"]
    assert [(r["kind"], r["workers"]) for r in runs] == [
        ("workers", 1),
        ("workers", 2),
        ("workers", 4),
        ("two instances", 1),
    ]
    for run in runs:
        assert run["ok"], run["failure"]
        assert run["paced"]["acked"] > 0 and run["paced"]["live_got"] > 0, run["paced"]
    summary = report["summary"]
    for n in ("1", "2", "4"):
        entry = summary["workers"][n]
        assert entry["acked_per_s"]["median"] > 0, entry
        for figure in ("saturated_p50_ms", "saturated_p99_ms", "paced_p50_ms", "paced_p99_ms"):
            assert _number(entry[figure]["median"]), (n, figure, entry)
        parts = entry["cpu"]["parts"]
        assert set(parts) == {"server", "postgres", "postgres background", "redis", "load generator"}
        assert parts["server"]["seconds"]["median"] > 0 and parts["postgres"]["seconds"]["median"] > 0, parts
        assert parts["redis"]["seconds"]["median"] > 0 and parts["load generator"]["seconds"]["median"] > 0, parts
        assert sum(p["share_pct"]["median"] for p in parts.values()) == pytest.approx(100, abs=1)
    server_processes = [r["cpu"]["per_process"]["server"] for r in runs if r["kind"] == "workers"]
    for processes, n in zip(server_processes, (1, 2, 4), strict=True):
        assert sum(1 for seconds in processes if seconds > 0) >= n, (n, processes)  # every worker measured
    cross = summary["two_instances"]
    for figure in ("same_p50_ms", "same_p99_ms", "cross_p50_ms", "cross_p99_ms"):
        assert _number(cross[figure]["median"]), (figure, cross)
    assert cross["added_p50_ms"]["median"] is not None and cross["cross_got"] > 0, cross
    assert summary["estimate"]["readings_per_s"] > 0 and 1 <= summary["estimate"]["workers"] <= 8

    table = done.stderr
    for heading in ("1. One port", "2. The cross-instance path", "3. CPU during the saturating loads", "4. Estimate"):
        assert heading in table, table[-4000:]
    assert "added by the cross-instance path" in table and "How: CPU per acked reading" in table, table[-4000:]
