#!/usr/bin/env python3
"""Scale benchmark: server memory per idle device connection, and the day view over 10 M readings.

What is measured
- Idle connections (--connections N, default 10,000): N devices connect to `/ws/device`, say
  hello, get their welcome (docs/protocol.md section 1) and then stay connected and silent. The figure
  is the server's RSS per connection: (RSS with N idle connections - RSS with none) / N, both
  taken as the peak over a quiet window (--settle-seconds before, --idle-seconds after). Also
  reported: the time to open all N (handshake, hello, welcome), the server's peak RSS while they
  connect, its CPU while they idle (keepalive pings: every connection is pinged every 20 s by
  default, so a window shorter than that sees only some of them), and the server's own count of
  open connections from `/metrics` (`pulsewire_device_connections`), which must equal N.
- Day view (--readings R, default 10,000,000): a SQLite database holding one day of a fleet,
  each device sending one `temperature` reading per second (86,400 a day), with as many devices
  as it takes to hold at least R readings (10 M: 116 devices, 10,022,400 readings), plus one dense
  series (--dense-readings, default 1,000,000 in the same day, about 11.6 per second). The figure
  is the latency of the HTTP day view `GET /api/devices/{id}/telemetry?keys=temperature&start=..&end=..
  &interval=60000&agg=avg&limit=1440&order=asc`: one warm-up, then --repeats timed requests (full
  body received), p50/p95/max. (The dashboard's own 24 h range asks for 2-minute buckets,
  dashboard/js/ranges.js; the readings scanned are the same.) Every answer is checked: 1,440
  buckets, bucket times, and every bucket's average against the value computed here from the
  generated data. The server's read function is also timed here on the same file, to split
  database time from the HTTP path.

How
- Every phase starts its own `pulsewire serve` (the runner the tests use, tests/support/server.py,
  through bench/harness: free port, random admin key, PULSEWIRE_* environment ignored, SQLite
  default settings).
- Idle: registers the devices through `POST /api/devices` (one keep-alive client, one request per
  device: there is no bulk call), then restarts the server on the same data, so the baseline is a
  freshly started server and not one whose heap grew while registering. The devices are Python
  `websockets` clients in a process of their own (they never share the server's process or this
  one), opening at most --connect-concurrency handshakes at a time. RLIMIT_NOFILE is raised to
  the hard limit here before the server and the client process start; both inherit it.
- Day view: the database is built once and kept in <work-dir>/scale-db-<layout>/ (bench/.work is
  gitignored); later runs reuse it unless --rebuild. Building: a server creates the schema and
  registers the devices through the API and is stopped; then the readings are bulk-inserted with
  sqlite3 straight into `series` and `readings` (no journal, synchronous=OFF, one transaction per
  hour of data), in arrival order (second by second across all series, as the server's writer
  would have stored them), so the table's pages are laid out as after real ingest. A manifest is
  written last: a build that did not finish is never reused.

Targets (issue, 2-core machine, SQLite): < 50 KB of server RSS per idle connection at 10,000
connections; a day view (1,440 one-minute averages of a 1 Hz device) in < 100 ms (judged on p95)
with 10 M readings stored. The dense series has no target: it shows how the view scales with the
readings in the viewed range.

Timings are noisy on a shared 2-core machine (the load averages at start and end are printed).
This is a benchmark, not a test: run it by hand (bench/scale.py --help).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import platform
import queue
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from harness.cli import BenchError, give_up, positive_float, positive_int, say
from harness.devices import open_device, raise_open_files_limit
from harness.paths import WORK_DIR
from harness.sampler import ServerSampler
from harness.server import RUN_FAILURES, Server, bench_server

TARGET_KB_PER_CONNECTION = 50.0
TARGET_DAY_VIEW_MS = 100.0

# Idle connections
FW = "bench-scale"  # the firmware version its devices say hello with
CONNECT_TIMEOUT_S = 60.0  # one handshake plus hello/welcome, under a queue of others
REGISTER_CHUNK = 1000  # devices per progress line (and per keep-alive client) while registering
PROGRESS_EVERY = 1000  # connections per progress line
OPEN_FILES_MARGIN = 256  # descriptors besides the connections: database, log, threads' files, listeners
COUNTERS = 3
CONNECTED, FAILED, DONE = range(COUNTERS)  # shared counters of the client process

# Day view
LAYOUT_VERSION = 1  # bump when the generated data changes, so cached databases are rebuilt
DAY_MS = 86_400_000
# The day before yesterday (UTC): well within raw retention, and a closed day, so compaction packs
# all of it. The cached database is keyed by it and so rebuilt once a day.
DAY_START_MS = (int(time.time() * 1000) // 86_400_000 - 2) * 86_400_000
FLEET_PERIOD_MS = 1000  # each fleet device: one reading per second
TICKS_PER_DAY = DAY_MS // FLEET_PERIOD_MS
TICKS_PER_TRANSACTION = 3600  # one hour of the fleet per transaction (and progress line)
BUCKET_MS = 60_000
BUCKETS = DAY_MS // BUCKET_MS  # 1,440
METRIC = "temperature"
DB_FILE = "pulsewire.db"  # where `pulsewire serve --data-dir` keeps SQLite (Settings.resolved_database_url)
MANIFEST = "manifest.json"
DENSE_DEVICE = "dense-0"


# Command line


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/scale.py",
        description="Measure two scale figures of a real Pulsewire server: its RSS per idle device connection "
        "(N devices connected to /ws/device, said hello, then silent) and the latency of the HTTP day view "
        "(1,440 one-minute averages) over a SQLite database of 10 M readings. Every phase starts its own "
        "`pulsewire serve`; the day-view database is built once and cached in --work-dir.",
        epilog="Example: .venv/bin/python bench/scale.py --connections 10000 --readings 10000000. "
        "Progress goes to stderr; the results table to stdout (to stderr with --json, so stdout is pure JSON). "
        "Exit status: 0 if every run worked (targets met or not), 1 if a run failed or returned wrong data, "
        "2 if the set-up is impossible (e.g. too few file descriptors).",
    )
    parser.add_argument(
        "--only", choices=("idle", "dayview"), default=None, help="run one of the two measurements (default: both)"
    )
    add_idle_args(parser)
    add_dayview_args(parser)
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=WORK_DIR,
        help=f"folder for the cached day-view databases (default: {WORK_DIR})",
    )
    parser.add_argument(
        "--server-flag",
        action="append",
        default=[],
        metavar="FLAG",
        help="extra flag for every `pulsewire serve`, repeatable, e.g. --server-flag=--ping-interval-s=60",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="also print the results as one JSON object on stdout (the table then goes to stderr)",
    )
    return parser.parse_args(argv)


def add_idle_args(parser: argparse.ArgumentParser) -> None:
    idle = parser.add_argument_group("idle connections")
    idle.add_argument(
        "--connections", type=positive_int, default=10_000, help="idle device connections to hold (default: 10000)"
    )
    idle.add_argument(
        "--connect-concurrency",
        type=positive_int,
        default=200,
        help="handshakes in flight at once; the server's listen backlog is 2048 (default: 200)",
    )
    idle.add_argument(
        "--idle-seconds",
        type=positive_float,
        default=10.0,
        help="seconds all connections stay idle before the RSS is taken (default: 10)",
    )
    idle.add_argument(
        "--settle-seconds",
        type=positive_float,
        default=2.0,
        help="seconds the restarted server sits unconnected while its baseline RSS is taken (default: 2)",
    )


def add_dayview_args(parser: argparse.ArgumentParser) -> None:
    view = parser.add_argument_group("day view")
    view.add_argument(
        "--readings",
        type=positive_int,
        default=10_000_000,
        help="fleet readings to store, at least: 1 Hz devices for one day, as many devices as it takes "
        f"({TICKS_PER_DAY:,} readings each; default: 10000000 -> 116 devices)",
    )
    view.add_argument(
        "--dense-readings",
        type=non_negative_int,
        default=1_000_000,
        help="readings of one extra dense series in the same day, viewed as a second figure; 0: none "
        "(default: 1000000)",
    )
    view.add_argument(
        "--repeats", type=positive_int, default=20, help="timed day views after one warm-up (default: 20)"
    )
    view.add_argument("--rebuild", action="store_true", help="build the database again even if a cached one exists")


# Shared helpers


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q% of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def mb(size: float) -> float:
    return round(size / 2**20, 1)


def load_averages() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def register_with_progress(server: Server, device_ids: list[str]) -> tuple[list[str], float]:
    """Register the devices through the API, a progress line per chunk; (tokens, seconds)."""
    tokens: list[str] = []
    started = time.monotonic()
    for first in range(0, len(device_ids), REGISTER_CHUNK):
        tokens += server.register_many(device_ids[first : first + REGISTER_CHUNK])
        if len(device_ids) > REGISTER_CHUNK:
            elapsed = time.monotonic() - started
            say(f"  registered {len(tokens):,}/{len(device_ids):,} ({len(tokens) / elapsed:,.0f}/s)")
    return tokens, time.monotonic() - started


# Idle connections: the client process


def hold_process(url: str, tokens: list[str], concurrency: int, counters: Any, release: Any, results: Any) -> None:
    """Entry point of the client process: connect every device, hold them until `release`, report."""
    try:
        summary = asyncio.run(_hold_connections(url, tokens, concurrency, counters, release))
    except BaseException as exc:  # noqa: BLE001  (anything goes back to the parent as text)
        counters[DONE] = 1
        results.put({"error": f"{type(exc).__name__}: {exc}"})
    else:
        results.put(summary)


async def _hold_connections(
    url: str, tokens: list[str], concurrency: int, counters: Any, release: Any
) -> dict[str, Any]:
    from websockets.protocol import State

    gate = asyncio.Semaphore(concurrency)

    async def one(token: str) -> Any:
        async with gate:
            ws = await open_device(url, token, FW, CONNECT_TIMEOUT_S, ping_interval=None, close_timeout=5)
        counters[CONNECTED] += 1
        return ws

    started = time.monotonic()
    outcomes = await asyncio.gather(*(one(token) for token in tokens), return_exceptions=True)
    connect_s = time.monotonic() - started
    sockets = [o for o in outcomes if not isinstance(o, BaseException)]
    failures = [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)]
    counters[FAILED] = len(failures)
    counters[DONE] = 1
    while not release.is_set():
        await asyncio.sleep(0.1)
    # A connection the server closed while it should have been idle makes the figure wrong.
    dropped = sum(1 for ws in sockets if ws.state is not State.OPEN)

    async def close(ws: Any) -> None:
        async with gate:
            await ws.close()

    await asyncio.gather(*(close(ws) for ws in sockets), return_exceptions=True)
    return {"connect_s": connect_s, "failed": len(failures), "failures": failures[:10], "dropped": dropped}


class Devices:
    """The client process, seen from here: start, wait for every connection, release, summary."""

    def __init__(self, port: int, tokens: list[str], concurrency: int) -> None:
        ctx = mp.get_context("spawn")  # a fresh interpreter: nothing of this process's state is copied
        self.counters = ctx.Array("q", COUNTERS, lock=False)
        self.release = ctx.Event()
        self.results = ctx.Queue()
        self.count = len(tokens)
        self.proc = ctx.Process(
            target=hold_process,
            args=(f"ws://127.0.0.1:{port}/ws/device", tokens, concurrency, self.counters, self.release, self.results),
            name="pulsewire-bench-devices",
            daemon=True,
        )

    def start(self) -> None:
        self.proc.start()

    def wait_connected(self, deadline_s: float) -> None:
        """Wait until every device has its welcome; a progress line every PROGRESS_EVERY connections."""
        deadline = time.monotonic() + deadline_s
        shown = 0
        while not self.counters[DONE]:
            connected = self.counters[CONNECTED]
            if connected >= shown + PROGRESS_EVERY:
                shown = connected - connected % PROGRESS_EVERY
                say(f"  connected {connected:,}/{self.count:,}")
            if not self.proc.is_alive():
                raise BenchError(f"the client process exited with {self.proc.exitcode} while connecting")
            if time.monotonic() > deadline:
                raise BenchError(f"only {connected:,} of {self.count:,} devices connected within {deadline_s:.0f} s")
            time.sleep(0.2)

    @property
    def connected(self) -> int:
        return int(self.counters[CONNECTED])

    def rss(self) -> int | None:
        import psutil

        try:
            return int(psutil.Process(self.proc.pid).memory_info().rss)
        except (psutil.Error, ValueError):
            return None

    def finish(self) -> dict[str, Any]:
        """Close every connection and return the client's summary (or {"error": ...})."""
        self.release.set()
        if self.proc.pid is None:
            return {"error": "the client process did not start"}
        summary: dict[str, Any] | None = None
        deadline = time.monotonic() + 120  # closing 10,000 connections takes a few seconds
        while time.monotonic() < deadline:
            try:
                summary = self.results.get(timeout=0.5)
                break
            except queue.Empty:
                if not self.proc.is_alive():
                    with contextlib.suppress(queue.Empty):
                        summary = self.results.get(timeout=1)  # what it put just before exiting
                    break
        self.proc.join(15)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        return summary or {"error": f"the client process ended (exit {self.proc.exitcode}) without a summary"}


# Idle connections: the run


@dataclass
class IdleResult:
    connections: int
    concurrency: int
    idle_seconds: float
    ok: bool = False
    failure: str | None = None
    register_s: float | None = None
    connect_s: float | None = None
    connects_per_s: float | None = None
    rss_before_mb: float | None = None
    rss_peak_connecting_mb: float | None = None
    rss_after_mb: float | None = None
    kb_per_connection: float | None = None
    server_connections_gauge: float | None = None
    server_idle_cpu_pct: float | None = None
    server_connect_cpu_pct: float | None = None
    client_rss_mb: float | None = None
    dropped: int | None = None
    open_files_limit: int | None = None
    server_log: list[str] = field(default_factory=list)
    verdict: str | None = None  # "pass", "short" or "failed"


def run_idle(args: argparse.Namespace) -> IdleResult:
    n = args.connections
    result = IdleResult(n, args.connect_concurrency, args.idle_seconds)
    say(f"idle connections: {n:,} devices")
    try:
        result.open_files_limit = raise_open_files_limit(n + OPEN_FILES_MARGIN)
    except BenchError as exc:
        give_up(str(exc))
    with tempfile.TemporaryDirectory(prefix="pulsewire-scale-") as tmp:
        server = bench_server(Path(tmp), None, args.server_flag)
        try:
            say("  starting a server to register the devices...")
            server.start()
            tokens, result.register_s = register_with_progress(server, [f"idle-{i}" for i in range(n)])
            server.stop()
            say("  restarting the server, so the baseline is a fresh process...")
            server = bench_server(Path(tmp), None, args.server_flag)
            server.start()
            measure_idle(server, tokens, args, result)
            result.ok = True
        except RUN_FAILURES as exc:
            result.failure = str(exc) or type(exc).__name__
            say("  idle run failed: " + result.failure.replace("\n", "\n    "))
        finally:
            server.stop()
            result.server_log = server.log_lines()[:20]
    judge_idle(result)
    return result


def measure_idle(server: Server, tokens: list[str], args: argparse.Namespace, result: IdleResult) -> None:
    n = len(tokens)
    say(f"  baseline: {args.settle_seconds:g} s with no connection...")
    with ServerSampler(server.pid) as quiet:
        time.sleep(args.settle_seconds)
    result.rss_before_mb = mb(quiet.peak_rss)
    devices = Devices(server.port, tokens, args.connect_concurrency)
    try:
        say(f"  connecting {n:,} devices, {args.connect_concurrency} handshakes at a time...")
        with ServerSampler(server.pid) as connecting:
            window_start = time.monotonic()
            devices.start()
            devices.wait_connected(deadline_s=120 + n * 0.05)
            connect_window_s = time.monotonic() - window_start  # includes the client process starting
        if devices.connected == n:
            say(f"  all {n:,} connected; idle for {args.idle_seconds:g} s...")
            with ServerSampler(server.pid) as idle:
                time.sleep(args.idle_seconds)
            client_rss = devices.rss()
            gauge = server.metrics().get("pulsewire_device_connections")
    finally:
        summary = devices.finish()  # also after a failure: it says why devices did not connect
    check_client(summary, devices.connected, n)
    result.connect_s = round(summary["connect_s"], 2)
    result.connects_per_s = round(n / summary["connect_s"], 1)
    result.rss_peak_connecting_mb = mb(connecting.peak_rss)
    result.server_connect_cpu_pct = cpu_percent(connecting, connect_window_s)
    result.rss_after_mb = mb(idle.peak_rss)
    result.server_idle_cpu_pct = cpu_percent(idle, args.idle_seconds)
    result.kb_per_connection = round((idle.peak_rss - quiet.peak_rss) / n / 1024, 2)
    result.server_connections_gauge = gauge
    result.dropped = summary["dropped"]
    result.client_rss_mb = None if client_rss is None else mb(client_rss)
    say(
        f"  RSS {result.rss_before_mb} -> {result.rss_after_mb} MB: {result.kb_per_connection} KB per connection; "
        f"connected in {result.connect_s} s"
    )
    if summary["dropped"]:
        raise BenchError(f"the server closed {summary['dropped']:,} of {n:,} connections while they were idle")
    if gauge != n:
        raise BenchError(f"/metrics counts {gauge} open device connections (pulsewire_device_connections), not {n}")
    if (code := server.crashed()) is not None:
        raise BenchError(f"server exited with {code}:\n{server.log_tail()}")


def check_client(summary: dict[str, Any], connected: int, wanted: int) -> None:
    """Raise with the client's own reason unless every device connected."""
    if "error" in summary:
        raise BenchError(f"client process: {summary['error']} ({connected:,} of {wanted:,} devices connected)")
    if summary["failed"]:
        raise BenchError(
            f"{summary['failed']:,} of {wanted:,} devices failed to connect, e.g. {summary['failures'][0]}"
        )
    if connected != wanted:
        raise BenchError(f"only {connected:,} of {wanted:,} devices connected")


def cpu_percent(sampler: ServerSampler, seconds: float) -> float | None:
    """The server's CPU over the sampler's window, in % of one core."""
    return None if sampler.cpu_seconds is None else round(100 * sampler.cpu_seconds / seconds, 1)


def judge_idle(result: IdleResult) -> None:
    if not result.ok or result.kb_per_connection is None:
        result.verdict = "failed"
    else:
        result.verdict = "pass" if result.kb_per_connection < TARGET_KB_PER_CONNECTION else "short"


# Day view: the data


@dataclass(frozen=True)
class Layout:
    """One day of readings: `fleet_devices` at 1 Hz, and one dense series of `dense_readings`."""

    fleet_devices: int
    dense_readings: int

    @classmethod
    def for_readings(cls, readings: int, dense_readings: int) -> Layout:
        return cls(math.ceil(readings / TICKS_PER_DAY), dense_readings)

    @property
    def fleet_readings(self) -> int:
        return self.fleet_devices * TICKS_PER_DAY

    @property
    def total_readings(self) -> int:
        return self.fleet_readings + self.dense_readings

    @property
    def fleet_ids(self) -> list[str]:
        return [f"fleet-{i}" for i in range(self.fleet_devices)]

    @property
    def device_ids(self) -> list[str]:
        return self.fleet_ids + ([DENSE_DEVICE] if self.dense_readings else [])

    def key(self, schema: str | None) -> str:
        """Folder name of the cached database: every parameter that changes its content."""
        return (
            f"scale-db-v{LAYOUT_VERSION}-fleet{self.fleet_devices}-dense{self.dense_readings}-schema{schema}"
            f"-day{DAY_START_MS // DAY_MS}"
        )


# Values are simple integer formulas, so SQL averages can be checked exactly here. The fleet's
# sawtooth phase differs per device, so a query answered from the wrong series is caught.


def fleet_value(device: int, tick: int) -> float:
    return 20.0 + ((tick * 37 + device * 101) % 997) / 100.0


def dense_ts(j: int, count: int) -> int:
    """Readings spread evenly over the day; distinct, since a day has far more ms than readings."""
    return DAY_START_MS + j * DAY_MS // count


def dense_value(j: int) -> float:
    return 10.0 + ((j * 53) % 1009) / 100.0


def first_dense_at(ts: int, count: int) -> int:
    """The first dense reading index whose ts is >= ts."""
    return -(-(ts - DAY_START_MS) * count // DAY_MS)


def arrival_rows(
    layout: Layout, fleet_series: list[int], dense_series: int | None, ticks: range
) -> Iterator[tuple[int, int, float, int]]:
    """(series_id, ts, value, is_bool) for these fleet ticks, in arrival order: second by second."""
    count = layout.dense_readings
    j = first_dense_at(DAY_START_MS + ticks.start * FLEET_PERIOD_MS, count) if count else 0
    for tick in ticks:
        ts = DAY_START_MS + tick * FLEET_PERIOD_MS
        for device, sid in enumerate(fleet_series):
            yield sid, ts, fleet_value(device, tick), 0
        while dense_series is not None and j < count and dense_ts(j, count) < ts + FLEET_PERIOD_MS:
            yield dense_series, dense_ts(j, count), dense_value(j), 0
            j += 1


def expected_fleet_buckets(device: int) -> list[float]:
    per_bucket = BUCKET_MS // FLEET_PERIOD_MS
    values = [fleet_value(device, tick) for tick in range(TICKS_PER_DAY)]
    return [math.fsum(values[b * per_bucket : (b + 1) * per_bucket]) / per_bucket for b in range(BUCKETS)]


def expected_dense_buckets(count: int) -> list[float | None]:
    """The dense series' one-minute averages (None for a bucket without readings)."""
    sums = [0.0] * BUCKETS
    counts = [0] * BUCKETS
    for j in range(count):
        bucket = (dense_ts(j, count) - DAY_START_MS) // BUCKET_MS
        sums[bucket] += dense_value(j)
        counts[bucket] += 1
    return [s / c if c else None for s, c in zip(sums, counts, strict=True)]


# Day view: building and caching the database


def schema_head() -> str | None:
    from pulsewire.storage.engine import head_revision

    return head_revision()


def cached_database(layout: Layout, work_dir: Path, rebuild: bool, flags: list[str]) -> tuple[Path, dict[str, Any]]:
    """The folder holding the database for `layout` and its manifest; built here if needed."""
    folder = work_dir / layout.key(schema_head())
    manifest_path = folder / MANIFEST
    if not rebuild and manifest_path.is_file() and (folder / DB_FILE).is_file():
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        say(f"  using the cached database in {folder} (built {manifest['built_at']}; --rebuild to build it again)")
        manifest["cached"] = True
        return folder, manifest
    manifest = build_database(layout, folder, flags)
    manifest_path.write_text(json.dumps(manifest, indent=2))  # last: marks the build complete
    manifest["cached"] = False
    return folder, manifest


def build_database(layout: Layout, folder: Path, flags: list[str]) -> dict[str, Any]:
    say(f"  building {layout.total_readings:,} readings in {folder} ...")
    started = time.monotonic()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    server = bench_server(folder, None, flags)
    try:
        say("  a server creates the schema and registers the devices...")
        server.start()
        register_with_progress(server, layout.device_ids)
    finally:
        server.stop()  # the bulk load below must be the only one with the file open
    fleet_series, dense_series = load_readings(folder / DB_FILE, layout)
    compact(folder)
    return {
        "layout": asdict(layout),
        "day_start_ms": DAY_START_MS,
        "fleet_series": fleet_series,
        "dense_series": dense_series,
        "readings": layout.total_readings,
        "build_s": round(time.monotonic() - started, 1),
        "built_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def compact(folder: Path) -> None:
    """Pack the loaded day into blocks and rollups, as a running server would within minutes."""
    done = subprocess.run(
        [sys.executable, "-m", "pulsewire", "db", "compact", "--json", "--data-dir", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"pulsewire db compact failed: {done.stderr.strip()[-500:]}")
    say(f"  compacted: {json.loads(done.stdout)}")


def load_readings(db_path: Path, layout: Layout) -> tuple[list[int], int | None]:
    """Bulk-insert the series and readings behind a stopped server; (fleet series ids, dense series id)."""
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        # Nothing else has the file open. No journal and no fsync while loading: a crash leaves no
        # manifest, so the next run rebuilds. WAL again at the end, as the server leaves it.
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-262144")
        fleet_series, dense_series = insert_series(db, layout)
        started = time.monotonic()
        for first in range(0, TICKS_PER_DAY, TICKS_PER_TRANSACTION):
            ticks = range(first, min(first + TICKS_PER_TRANSACTION, TICKS_PER_DAY))
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO readings VALUES (?, ?, ?, ?)", arrival_rows(layout, fleet_series, dense_series, ticks)
            )
            db.execute("COMMIT")
            done = layout.total_readings * ticks.stop // TICKS_PER_DAY
            rate = done / (time.monotonic() - started)
            say(f"  loaded about {done:,}/{layout.total_readings:,} readings ({rate:,.0f}/s)")
        stored = db.execute("SELECT count(*) FROM readings").fetchone()[0]
        if stored != layout.total_readings:
            raise BenchError(f"loaded {stored:,} readings, expected {layout.total_readings:,}")
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()
    return fleet_series, dense_series


def insert_series(db: sqlite3.Connection, layout: Layout) -> tuple[list[int], int | None]:
    """One `temperature` series per device, with its latest reading, as the writer keeps it."""
    last = TICKS_PER_DAY - 1
    rows = [
        (device_id, DAY_START_MS + last * FLEET_PERIOD_MS, fleet_value(d, last))
        for d, device_id in enumerate(layout.fleet_ids)
    ]
    if layout.dense_readings:
        j = layout.dense_readings - 1
        rows.append((DENSE_DEVICE, dense_ts(j, layout.dense_readings), dense_value(j)))
    ids = []
    db.execute("BEGIN")
    for device_id, ts, value in rows:
        cur = db.execute(
            "INSERT INTO series (device_id, metric, last_ts, last_value, last_is_bool) VALUES (?, ?, ?, ?, 0)",
            (device_id, METRIC, ts, value),
        )
        ids.append(int(cur.lastrowid or 0))
    db.execute("COMMIT")
    return (ids[:-1], ids[-1]) if layout.dense_readings else (ids, None)


# Day view: timing and checking the answers


@dataclass
class ViewTiming:
    name: str  # "fleet" or "dense"
    device: str
    readings_in_day: int
    repeats: int
    buckets: int | None = None
    response_kb: float | None = None
    first_ms: float | None = None  # the warm-up request: a cold SQLite page cache in the server
    min_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    max_ms: float | None = None
    sql_p50_ms: float | None = None  # the server's read function run here, straight on the file
    sql_max_ms: float | None = None
    target: str | None = None
    verdict: str | None = None


@dataclass
class DayViewResult:
    fleet_devices: int
    dense_readings: int
    stored_readings: int
    repeats: int
    ok: bool = False
    failure: str | None = None
    database: str | None = None
    cached: bool | None = None
    build_s: float | None = None
    db_mb: float | None = None
    views: list[ViewTiming] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    server_log: list[str] = field(default_factory=list)


def day_view_params() -> dict[str, str | int]:
    """The day view as the dashboard asks for it (dashboard/js/ranges.js queryParams), with 1-minute buckets."""
    return {
        "keys": METRIC,
        "start": DAY_START_MS,
        "end": DAY_START_MS + DAY_MS - 1,  # end is inclusive
        "interval": BUCKET_MS,
        "agg": "avg",
        "limit": BUCKETS,  # the default limit (1,000) would cut the day short
        "order": "asc",
    }


def run_dayview(args: argparse.Namespace) -> DayViewResult:
    layout = Layout.for_readings(args.readings, args.dense_readings)
    result = DayViewResult(layout.fleet_devices, layout.dense_readings, layout.total_readings, args.repeats)
    say(
        f"day view: {layout.fleet_devices} device(s) x {TICKS_PER_DAY:,} readings"
        + (f" + a dense series of {layout.dense_readings:,}" if layout.dense_readings else "")
        + f" = {layout.total_readings:,} readings"
    )
    server: Server | None = None
    try:
        folder, manifest = cached_database(layout, args.work_dir, args.rebuild, args.server_flag)
        result.database, result.cached, result.build_s = str(folder), manifest["cached"], manifest["build_s"]
        result.db_mb = mb(sum(p.stat().st_size for p in folder.glob(DB_FILE + "*")))
        say("  starting a server on it...")
        server = bench_server(folder, None, args.server_flag)
        server.start()
        result.views = time_views(server, folder / DB_FILE, layout, manifest, args.repeats, result)
        if (code := server.crashed()) is not None:
            raise BenchError(f"server exited with {code}:\n{server.log_tail()}")
        result.ok = True
    except (*RUN_FAILURES, sqlite3.Error) as exc:
        result.failure = str(exc) or type(exc).__name__
        say("  day view failed: " + result.failure.replace("\n", "\n    "))
    finally:
        if server is not None:
            server.stop()
            result.server_log = server.log_lines()[:20]
    return result


def time_views(
    server: Server, db_path: Path, layout: Layout, manifest: dict[str, Any], repeats: int, result: DayViewResult
) -> list[ViewTiming]:
    """Time the fleet device in the middle of the fleet, then the dense series."""
    device = layout.fleet_devices // 2
    fleet_sid = manifest["fleet_series"][device]
    plans = [("fleet", f"fleet-{device}", TICKS_PER_DAY, fleet_sid, on_grid(expected_fleet_buckets(device)))]
    if layout.dense_readings:
        expected = on_grid(expected_dense_buckets(layout.dense_readings))
        plans.append(("dense", DENSE_DEVICE, layout.dense_readings, manifest["dense_series"], expected))
    views = []
    for name, device_id, readings, sid, points in plans:
        say(f"  {name}: day view of {device_id} ({readings:,} readings in the day), 1 warm-up + {repeats} timed...")
        view = time_http(server, name, device_id, readings, points, repeats)
        times = time_sql(db_path, sid, repeats)
        view.sql_p50_ms, view.sql_max_ms = round(percentile(times, 50), 1), round(max(times), 1)
        judge_view(view)
        say(
            f"    first {view.first_ms} ms, then p50/p95/max {view.p50_ms}/{view.p95_ms}/{view.max_ms} ms "
            f"(database read alone p50 {view.sql_p50_ms} ms)"
        )
        views.append(view)
    return views


def on_grid(averages: list[float] | list[float | None]) -> list[tuple[int, float]]:
    """(bucket start, average) for the buckets that hold readings, oldest first."""
    return [(DAY_START_MS + b * BUCKET_MS, avg) for b, avg in enumerate(averages) if avg is not None]


def time_http(
    server: Server, name: str, device_id: str, readings: int, expected: list[tuple[int, float]], repeats: int
) -> ViewTiming:
    view = ViewTiming(name, device_id, readings, repeats)
    path = f"/api/devices/{device_id}/telemetry"
    with httpx.Client(base_url=server.base, timeout=120) as client:
        started = time.perf_counter()
        first = fetch(client, path)  # warm-up: also brings the pages into the OS cache
        view.first_ms = round(1000 * (time.perf_counter() - started), 1)
        view.buckets = check_day_view(first, expected, device_id)
        view.response_kb = round(len(first.content) / 1024, 1)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            resp = fetch(client, path)
            times.append(1000 * (time.perf_counter() - started))
            if resp.content != first.content:  # same data, same answer; anything else is checked again
                check_day_view(resp, expected, device_id)
    view.min_ms, view.max_ms = round(min(times), 1), round(max(times), 1)
    view.p50_ms, view.p95_ms = round(percentile(times, 50), 1), round(percentile(times, 95), 1)
    return view


def fetch(client: httpx.Client, path: str) -> httpx.Response:
    resp = client.get(path, params=day_view_params())
    if resp.status_code != 200:
        raise BenchError(f"GET {path}: HTTP {resp.status_code} {resp.text[:300]}")
    return resp


def check_day_view(resp: httpx.Response, expected: list[tuple[int, float]], device_id: str) -> int:
    """Fail loudly unless the answer holds exactly the expected buckets and averages; returns the bucket count."""
    body = resp.json()
    if not isinstance(body, dict) or set(body) != {METRIC}:
        raise BenchError(f"{device_id}: expected {{{METRIC!r}: [...]}}, got keys {sorted(body)[:5]}")
    points = body[METRIC]
    if len(points) != len(expected):
        raise BenchError(f"{device_id}: {len(points)} buckets in the day view, expected {len(expected)}")
    wrong = [
        f"bucket {i}: got {got}, expected ts {ts} value {value!r}"
        for i, (got, (ts, value)) in enumerate(zip(points, expected, strict=True))
        if got.get("ts") != ts
        or not isinstance(got.get("value"), float)
        or not math.isclose(got["value"], value, rel_tol=1e-9, abs_tol=1e-9)
    ]
    if wrong:
        raise BenchError(f"{device_id}: {len(wrong)} of {len(points)} buckets are wrong, e.g. " + "; ".join(wrong[:3]))
    return len(points)


def time_sql(db_path: Path, series_id: int, repeats: int) -> list[float]:
    """The server's own read (`read_series`, the database part of the view) on the same file: ms per run."""
    from pulsewire.clock import now_ms
    from pulsewire.storage.engine import open_engine
    from pulsewire.storage.queries import TelemetryQuery, read_series
    from pulsewire.storage.retention import Retention

    query = TelemetryQuery(
        start=DAY_START_MS, end=DAY_START_MS + DAY_MS - 1, limit=BUCKETS, order="asc", interval=BUCKET_MS, agg="avg"
    )
    engine = open_engine(f"sqlite:///{db_path}")
    floors = Retention().floors(now_ms())  # the server's defaults
    try:
        with engine.connect() as conn:
            read_series(conn, series_id, query, floors)
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                read_series(conn, series_id, query, floors)
                times.append(1000 * (time.perf_counter() - started))
    finally:
        engine.dispose()
    return times


def judge_view(view: ViewTiming) -> None:
    """The target applies to a realistic device (the fleet); the dense series is reported without one."""
    if view.name == "fleet" and view.p95_ms is not None:
        view.target = f"p95 < {TARGET_DAY_VIEW_MS:g} ms"
        view.verdict = "pass" if view.p95_ms < TARGET_DAY_VIEW_MS else "short"


# Report


def table_rows(idle: IdleResult | None, dayview: DayViewResult | None) -> list[tuple[str, str, str, str]]:
    rows = [("figure", "result", "target", "mark")]
    if idle is not None:
        label = f"server RSS per idle connection ({idle.connections:,})"
        if idle.ok:
            value = f"{idle.kb_per_connection:,.1f} KB ({idle.rss_before_mb:,.0f} -> {idle.rss_after_mb:,.0f} MB)"
            rows.append((label, value, f"< {TARGET_KB_PER_CONNECTION:g} KB", idle.verdict or "-"))
            rows.append(
                ("  time to open them (hello, welcome)", f"{idle.connect_s} s ({idle.connects_per_s:,.0f}/s)", "-", "-")
            )
        else:
            rows.append((label, "failed", f"< {TARGET_KB_PER_CONNECTION:g} KB", "failed"))
    if dayview is not None:
        for v in dayview.views:
            value = f"p50 {v.p50_ms} / p95 {v.p95_ms} / max {v.max_ms} ms"
            rows.append(
                (
                    f"day view, {v.name} ({v.readings_in_day:,} readings in the day)",
                    value,
                    v.target or "-",
                    v.verdict or "-",
                )
            )
            if v.sql_p50_ms is not None:
                rows.append(("  of which the database read", f"p50 {v.sql_p50_ms} / max {v.sql_max_ms} ms", "-", "-"))
        if not dayview.ok:
            rows.append((f"day view over {dayview.stored_readings:,} readings", "failed", "-", "failed"))
    return rows


def format_table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def footnotes(idle: IdleResult | None, dayview: DayViewResult | None, loads: list[list[float]]) -> list[str]:
    out = [
        f"Machine: {os.cpu_count()} cores, shared by the server, the clients and this script; load average "
        f"(1/5/15 min) {loads[0]} at start, {loads[1]} at end. Timings are noisy when other work runs.",
    ]
    if idle is not None:
        if idle.ok:
            out.append(
                f"Idle: RSS taken as the peak over a quiet window; {idle.connect_s} s to connect {idle.connections:,} "
                f"devices, {idle.concurrency} handshakes at a time; server CPU {idle.server_connect_cpu_pct}% of a core "
                f"while they connected (peak RSS {idle.rss_peak_connecting_mb} MB), {idle.server_idle_cpu_pct}% "
                f"over {idle.idle_seconds:g} s idle; /metrics counted {idle.server_connections_gauge:,.0f} connections; "
                f"registering took {idle.register_s:.1f} s; client process RSS {idle.client_rss_mb} MB."
            )
        else:
            out.append(f"Idle run failed: {idle.failure}")
        out += [f"  server log: {line}" for line in idle.server_log[:5]]
    if dayview is not None:
        if dayview.database is not None:
            how = "cached" if dayview.cached else "built now"
            out.append(
                f"Day view: {dayview.stored_readings:,} readings in {dayview.db_mb:,} MB of SQLite ({how}; build took "
                f"{dayview.build_s} s), {dayview.fleet_devices} device(s) at 1 Hz"
                + (f" and a dense series of {dayview.dense_readings:,}" if dayview.dense_readings else "")
                + f"; 1,440 one-minute averages, {dayview.repeats} timed requests after a warm-up, every answer checked."
            )
        out += [f"  note: {note}" for note in dayview.notes]
        if dayview.failure:
            out.append(f"Day view failed: {dayview.failure}")
        out += [f"  server log: {line}" for line in dayview.server_log[:5]]
    return out


def report_json(idle: IdleResult | None, dayview: DayViewResult | None, loads: list[list[float]]) -> dict[str, Any]:
    return {
        "benchmark": "pulsewire scale",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "load_average": {"start": loads[0], "end": loads[1]},
        "targets": {"kb_per_connection": TARGET_KB_PER_CONNECTION, "day_view_p95_ms": TARGET_DAY_VIEW_MS},
        "idle": None if idle is None else asdict(idle),
        "dayview": None if dayview is None else asdict(dayview),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import psutil  # noqa: F401  (used by ServerSampler)
    except ImportError:
        give_up("psutil is needed to sample the server's memory: pip install psutil")
    start_load = load_averages()
    idle = run_idle(args) if args.only in (None, "idle") else None
    dayview = run_dayview(args) if args.only in (None, "dayview") else None
    loads = [start_load, load_averages()]
    table = "\n".join([*format_table(table_rows(idle, dayview)), "", *footnotes(idle, dayview, loads)])
    if args.json:
        print(table, file=sys.stderr)
        print(json.dumps(report_json(idle, dayview, loads)))
    else:
        print(table)
    return 0 if all(r.ok for r in (idle, dayview) if r is not None) else 1


if __name__ == "__main__":
    sys.exit(main())
