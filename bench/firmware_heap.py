#!/usr/bin/env python3
"""Firmware heap: what the firmware keeps allocated on MicroPython while it streams.

What is measured (gc.mem_alloc() right after a full collection, in bytes)
- baseline: a fresh MicroPython (the WebAssembly port, 1.27) after `import asyncio, json`, the
  least any asyncio firmware holds;
- simulation: the simulated board's own layer on top (pwsim.py: the streams that stand in for
  sockets), with nothing of the firmware loaded;
- code: the firmware's modules imported (compiled from source, as bytecode), nothing started;
- firmware: the unmodified firmware (device/firmware) on the simulated board, streaming to a real
  `pulsewire serve` (SQLite) every --interval-ms; sampled --samples times over --seconds once it
  is online. Its own share is that figure less the simulation's.

The WebAssembly port grows its heap on demand, so gc.mem_free() says nothing about an ESP32's
(about 110-160 KB free after boot on a board without PSRAM); allocation is what carries over.
Bytecode is compiled from source here: a board running .mpy files holds less.

This is a benchmark, not a test: run it by hand. It needs Node.js 18+ (MicroPython runs on it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from harness.cli import BenchError
from harness.server import bench_server
from pulsewire import firmware
from pulsewire_devkit.simboard.node import find_node, micropython_dir
from pulsewire_devkit.simboard.runner import SimBoard

BASELINE = "import asyncio, json"

# A bare MicroPython, no simulation: the collection gc.collect() asks for runs when the call
# returns to JS (this port's rule), so the figure is read in a second call.
BARE_JS = """
const { loadMicroPython } = await import(process.argv[1]);
const mp = await loadMicroPython({ stdout: () => {} });
mp.runPython(process.argv[2]);
const gc = mp.pyimport("gc");
gc.collect();
console.log(JSON.stringify({ alloc: gc.mem_alloc(), free: gc.mem_free() }));
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to sample the streaming firmware")
    parser.add_argument("--samples", type=int, default=5, help="heap samples over that time")
    parser.add_argument("--interval-ms", type=int, default=200, help="the board's sampling interval")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    return parser.parse_args()


def bare_baseline() -> int:
    node = find_node()
    entry = (micropython_dir() / "micropython.mjs").as_uri()
    done = subprocess.run(
        [node, "--input-type=module", "-e", BARE_JS, entry, BASELINE],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(json.loads(done.stdout.strip().splitlines()[-1])["alloc"])


def simulation_baseline() -> int:
    program = BASELINE + "\nprint('ready')\n"
    with SimBoard(None, files={"/main.py": program}, stay=True) as board:
        board.wait_for_line("ready", timeout=30)
        return board.heap()["alloc"]


def code_alloc() -> int:
    # main.py's modules, less main
    modules = "config, hardware, journal, link, ring, rules, sensors, session, state, wifi, wsclient, wsframe"
    program = f"{BASELINE}\nimport {modules}\nprint('ready')\n"
    with SimBoard(firmware.folder(), files={"/main.py": program}, stay=True) as board:
        board.wait_for_line("ready", timeout=30)
        return board.heap()["alloc"]


def firmware_samples(seconds: float, samples: int, interval_ms: int) -> tuple[list[int], int]:
    with tempfile.TemporaryDirectory(prefix="pulsewire-heap-") as tmp:
        server = bench_server(Path(tmp), None, ["--sample-interval-ms", str(interval_ms)])
        server.start()
        try:
            (token,) = server.register_many(["heap-bench"])
            config = {"server": server.base, "token": token, "interval_ms": interval_ms, "watchdog_ms": 0}
            config["sensors"] = [{"type": "mcu_temp"}, {"type": "system"}]
            with SimBoard(firmware.folder(), config) as board:
                board.wait_for_line("link: online", timeout=60)
                time.sleep(min(5.0, seconds / samples))  # past start-up: the first batches, the first GC
                figures = []
                for _ in range(samples):
                    figures.append(board.heap()["alloc"])
                    time.sleep(seconds / samples)
                readings = board.status()["readings"]
            stored = httpx.get(
                f"{server.base}/api/devices/heap-bench/telemetry", params={"interval": 10**13, "agg": "count"}
            ).json()
        finally:
            server.stop()
    count = int(stored["mcu_temperature"][0]["value"]) if stored.get("mcu_temperature") else 0
    if count == 0:
        raise BenchError(f"the firmware took {readings} readings but the server stored none")
    return figures, count


def main() -> int:
    args = parse_args()
    try:
        bare = bare_baseline()
        sim = simulation_baseline()
        code = code_alloc()
        figures, stored = firmware_samples(args.seconds, args.samples, args.interval_ms)
    except (BenchError, subprocess.CalledProcessError) as exc:
        print(f"firmware_heap: {exc}", file=sys.stderr)
        return 1
    steady = int(statistics.median(figures))
    report: dict[str, Any] = {
        "baseline_alloc": bare,
        "simulation_alloc": sim,
        "code_alloc": code,
        "firmware_alloc_samples": figures,
        "firmware_alloc_median": steady,
        "firmware_own": steady - sim,
        "firmware_over_baseline": steady - bare,
        "growth_first_to_last": figures[-1] - figures[0],
        "readings_stored": stored,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    rows = [
        (f"MicroPython baseline ({BASELINE})", bare, ""),
        ("+ the simulation's layer (streams)", sim, ""),
        ("+ the firmware's modules, imported", code, f"bytecode and module objects: {code - sim}"),
        (f"the firmware streaming (median of {len(figures)})", steady, f"samples: {figures}"),
        ("  the firmware's own (less the simulation)", steady - sim, f"running state: {steady - code}"),
        ("  over the bare baseline", steady - bare, ""),
        ("  growth, first sample to last", figures[-1] - figures[0], ""),
    ]
    for label, value, note in rows:
        print(f"{label:<45} {value:7d} bytes" + (f"  ({note})" if note else ""))
    print(f"{'readings stored by the server meanwhile':<45} {stored:7d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
