#!/usr/bin/env python3
"""Storage benchmark: bytes per stored value on disk, ingest and compaction rates, and the latency of
bucketed reads, over a week of a 1 Hz fleet written through the device channel.

What is measured
- The fleet (--devices, default 5; --days, default 7): boards like `pulsewire simulate`'s, each
  sending `temperature` (0.01 steps), `humidity` (0.1), `battery_v` (0.001) and `rssi` (integer
  dBm) once a second, as short decimals, the way the firmware prints them. The values follow a
  daily cycle, slow drift and sensor noise, and the battery discharges over the week (the
  simulator's own model runs flat within an hour at 1 Hz, which would make the data far easier
  to compress than a real board's). Seeded: every run and every revision stores the same values.
  The data ends an hour before the current hour began, so every 1-hour window is closed.
  5 devices x 4 metrics x 7 days = 12,096,000 stored values.
- Ingest: the readings go through the real write path, the device channel: devices registered
  through the admin API, one WebSocket per device with its token, `hello`, then `telemetry`
  batches of --batch readings (default 200) with their past timestamps, up to --window (8) un-acked
  per device. The figure is stored values acked per second, from the first batch sent to the
  last ack (an ack means committed).
- Compaction: `pulsewire db compact --json` run while the server is up, timed; values/s is the
  values it reports packed over the seconds it took. A revision without `db compact` (the
  baseline) is measured as it stands.
- Bytes per stored value: `pulsewire db stats --json` after compaction (bytes on disk: the SQLite
  file with its -wal and -shm, over stored values). Without `db stats`, the same files are sized
  here and the readings counted with sqlite3. The size before compaction is reported too.
- Query latency over HTTP (`GET /api/devices/{id}/telemetry`, full body received), for the fleet's
  middle device: a raw hour of one metric; a day of 1-minute averages; a week of 15-minute
  averages; a year of 1-hour averages (over the week that exists); the dashboard's week (4 metrics,
  avg,min,max, 15-minute buckets, 7 days); the day view (4 metrics, avg,min,max, 1-minute buckets,
  24 h). One warm-up each, then --queries rounds of all six in turn (interleaved, so noise hits all
  alike): median and range. Every answer is checked point by point against the generated values,
  and the `X-Pulsewire-Resolution` header, where the server sends one, is reported.

Baseline in the same run: --baseline-ref (default 8ff8aef, the release before compact storage)
is checked out into a temporary git worktree and its server run with the same interpreter and
packages (its `server/` first on PYTHONPATH, checked to import from there). With --repeat N every
revision runs N times, alternating which goes first, each on a fresh server and database; the
table shows medians (with an even N the less flattering middle one) and ranges, and the ratios
current / baseline.

Targets (issue, 2-core machine, SQLite): <= 2 bytes per stored value on disk once compacted; the
dashboard's week < 20 ms; a year of 1-hour averages < 50 ms; the day view over 10 M stored values
< 10 ms (judged on medians).

This is a benchmark, not a test: run it by hand (bench/storage.py --help).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from harness.cli import LOG_LINES_KEPT, BenchError, give_up, positive_float, positive_int, say
from harness.devices import open_device
from harness.revision import DEFAULT_BASELINE_REF, Revision, check_imports, checkout, current, revision_server
from harness.sampler import ServerSampler
from harness.server import RUN_FAILURES, Server, summarize_metrics

METRICS = ("temperature", "humidity", "battery_v", "rssi")
SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
YEAR_MS = 365 * DAY_MS
SEED = 20_251_120
DB_FILE = "pulsewire.db"  # where `pulsewire serve --data-dir` keeps SQLite
ACK_TIMEOUT_S = 120.0  # no ack for this long: the server is stuck
PROGRESS_EVERY_S = 10.0
DB_COMMAND_TIMEOUT_S = 3600.0

TARGET_BYTES_PER_VALUE = 2.0
TARGET_MS = {"dashboard_week": 20.0, "year_1h": 50.0, "day_view": 10.0}  # query -> median ms


# Command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/storage.py",
        description="Write a week of a 1 Hz fleet through the device channel of a real Pulsewire server, compact "
        "it, and print bytes per stored value on disk, ingest and compaction rates and the latency of bucketed "
        "reads over HTTP, beside the same workload on a baseline revision (a git worktree).",
        epilog="Example: .venv/bin/python bench/storage.py --repeat 3 (about 5 minutes per round and revision "
        "at the default size). Progress goes to stderr; the table to stdout (to stderr with --json, so stdout is "
        "pure JSON). Exit status: 0 if every run worked (targets met or not), 1 if a run failed or an answer was "
        "wrong, 2 if the set-up is impossible.",
    )
    parser.add_argument("--devices", type=positive_int, default=5, help="boards in the fleet (default: 5)")
    parser.add_argument("--days", type=positive_float, default=7.0, help="days of 1 Hz data per board (default: 7)")
    parser.add_argument("--hours", type=positive_float, default=None, help="hours of data instead of --days")
    parser.add_argument(
        "--batch", type=positive_int, default=200, help="readings per telemetry message, at most 1000 (default: 200)"
    )
    parser.add_argument("--window", type=positive_int, default=8, help="un-acked batches per board (default: 8)")
    parser.add_argument(
        "--queries", type=positive_int, default=20, help="timed rounds of the six queries after a warm-up (default: 20)"
    )
    parser.add_argument(
        "--repeat", type=positive_int, default=1, help="runs per revision, alternating their order (default: 1)"
    )
    baseline = parser.add_mutually_exclusive_group()
    baseline.add_argument(
        "--baseline-ref",
        default=DEFAULT_BASELINE_REF,
        metavar="REF",
        help=f"git revision to run the same workload on, side by side (default: {DEFAULT_BASELINE_REF}, the "
        "release before compact storage)",
    )
    baseline.add_argument("--no-baseline", action="store_true", help="measure the current tree alone")
    parser.add_argument(
        "--server-flag",
        action="append",
        default=[],
        metavar="FLAG",
        help="extra flag for `pulsewire serve` of every revision, repeatable",
    )
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="folder for the temporary data folders (default: the system's)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout (table to stderr)")
    args = parser.parse_args(argv)
    if args.batch > 1000:
        parser.error("--batch: the device channel takes at most 1000 readings per message")
    return args


# The fleet


@dataclass(frozen=True)
class Fleet:
    devices: int
    start_ms: int  # first reading, on an hour boundary
    count: int  # readings per board, one a second

    @property
    def end_ms(self) -> int:
        """Just past the last reading."""
        return self.start_ms + self.count * SECOND_MS

    @property
    def ids(self) -> list[str]:
        return [f"board-{i}" for i in range(self.devices)]

    @property
    def checked(self) -> int:
        """The board whose answers are timed and checked: the middle one."""
        return self.devices // 2

    @property
    def stored_values(self) -> int:
        return self.devices * self.count * len(METRICS)

    @classmethod
    def ending_before(cls, now_ms: int, devices: int, seconds: int) -> Fleet:
        end = now_ms // HOUR_MS * HOUR_MS - HOUR_MS  # an hour before the current one: every window closed
        return cls(devices, end - seconds * SECOND_MS, seconds)


Reading = tuple[int, float, float, float, int]  # ts, temperature, humidity, battery_v, rssi


def board_readings(board: int, start_ms: int, count: int) -> Iterator[Reading]:
    """One board's readings, seeded: a daily cycle, slow drift, sensor noise at the sensors' resolution,
    and a battery that loses 0.3 V a week."""
    rng = random.Random(SEED + board)
    gauss = rng.gauss
    phase = board * 0.7
    temp_drift = hum_drift = rssi_drift = 0.0
    radians_per_ms = 2 * math.pi / DAY_MS
    drop_per_reading = 0.3 / (WEEK_MS // SECOND_MS)
    for i in range(count):
        ts = start_ms + i * SECOND_MS
        day = math.sin(ts * radians_per_ms + phase)
        temp_drift = 0.999 * temp_drift + gauss(0, 0.01)  # weather: tenths of a degree over minutes
        hum_drift = 0.999 * hum_drift + gauss(0, 0.03)
        rssi_drift = 0.99 * rssi_drift + gauss(0, 0.3)
        yield (
            ts,
            round(21 + 4 * day + temp_drift + gauss(0, 0.03), 2),
            round(min(100.0, max(0.0, 50 - 10 * day + hum_drift + gauss(0, 0.1))), 1),
            round(4.15 - drop_per_reading * i + gauss(0, 0.002), 3),
            round(-62 + rssi_drift + gauss(0, 2)),
        )


def telemetry_frames(board: int, fleet: Fleet, batch: int) -> Iterator[tuple[int, str]]:
    """(readings, frame) per telemetry message of one board, seq from 1."""
    data: list[dict[str, Any]] = []
    seq = 0

    def frame() -> str:
        return orjson.dumps({"type": "telemetry", "seq": seq, "data": data}).decode()

    for ts, temperature, humidity, battery_v, rssi in board_readings(board, fleet.start_ms, fleet.count):
        values = {"temperature": temperature, "humidity": humidity, "battery_v": battery_v, "rssi": rssi}
        data.append({"ts": ts, "values": values})
        if len(data) == batch:
            seq += 1
            yield len(data), frame()
            data = []
    if data:
        seq += 1
        yield len(data), frame()


@dataclass
class Truth:
    """The checked board's values, metric by metric, to check every answer against."""

    fleet: Fleet
    values: dict[str, array[float]]

    @classmethod
    def of(cls, fleet: Fleet) -> Truth:
        columns: dict[str, array[float]] = {m: array("d") for m in METRICS}
        for reading in board_readings(fleet.checked, fleet.start_ms, fleet.count):
            for metric, value in zip(METRICS, reading[1:], strict=True):
                columns[metric].append(float(value))
        return cls(fleet, columns)

    def index_range(self, lo: int, hi: int) -> range:
        """Indexes of the readings with lo <= ts <= hi."""
        first = max(0, -((self.fleet.start_ms - lo) // SECOND_MS))  # ceil((lo - start) / 1 s)
        last = min(self.fleet.count - 1, (hi - self.fleet.start_ms) // SECOND_MS)
        return range(first, last + 1)


# Ingest over the device channel


@dataclass
class IngestFigures:
    readings: int = 0
    values: int = 0
    seconds: float = 0.0
    values_per_s: float = 0.0
    client_cpu_pct: float | None = None
    server_cpu_pct: float | None = None
    server_peak_rss_mb: float | None = None


async def _receive_acks(ws: Any, sizes: dict[int, int], slots: asyncio.Semaphore, acked: list[int]) -> None:
    """Count acked readings and free a window slot per ack; an error answer ends the run."""
    async for raw in ws:
        message = json.loads(raw)
        if message.get("type") == "ack":
            acked[0] += sizes.pop(message["seq"])
            slots.release()
        elif message.get("type") == "error":
            raise BenchError(f"the server refused a batch: {message}")


async def _take_slot(slots: asyncio.Semaphore, receiver: asyncio.Task[None]) -> None:
    waited = 0.0
    while True:
        try:
            await asyncio.wait_for(slots.acquire(), 1.0)
            return
        except TimeoutError:
            waited += 1.0
            if receiver.done():
                receiver.result()  # raises what ended it
                raise BenchError("the connection ended before every batch was acked") from None
            if waited >= ACK_TIMEOUT_S:
                raise BenchError(f"no ack for {ACK_TIMEOUT_S:g} s") from None


async def _board(ws: Any, board: int, fleet: Fleet, batch: int, window: int, acked: list[int]) -> None:
    """Send every batch of one board within the window, then wait for the last acks."""
    sizes: dict[int, int] = {}
    slots = asyncio.Semaphore(window)
    receiver = asyncio.create_task(_receive_acks(ws, sizes, slots, acked))
    try:
        for seq, (readings, frame) in enumerate(telemetry_frames(board, fleet, batch), 1):
            await _take_slot(slots, receiver)
            sizes[seq] = readings
            await ws.send(frame)
        for _ in range(window):
            await _take_slot(slots, receiver)
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver
        await ws.close()


async def _progress(acked: list[int], total: int, started: float) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        rate = acked[0] / (time.perf_counter() - started)
        say(f"    {acked[0]:,} of {total:,} readings acked ({rate * len(METRICS):,.0f} values/s)")


async def ingest(url: str, tokens: list[str], fleet: Fleet, batch: int, window: int) -> IngestFigures:
    """Connect every board, then send the whole fleet; acked values per second from the first send."""
    sockets = await asyncio.gather(*(open_device(url, token, "bench-storage", max_size=2**20) for token in tokens))
    acked = [0]
    cpu, started = time.process_time(), time.perf_counter()
    ticker = asyncio.create_task(_progress(acked, fleet.devices * fleet.count, started))
    try:
        await asyncio.gather(*(_board(ws, i, fleet, batch, window, acked) for i, ws in enumerate(sockets)))
    finally:
        ticker.cancel()
    seconds = time.perf_counter() - started
    expected = fleet.devices * fleet.count
    if acked[0] != expected:
        raise BenchError(f"{acked[0]:,} readings acked, expected {expected:,}")
    values = acked[0] * len(METRICS)
    client_cpu = 100 * (time.process_time() - cpu) / seconds
    return IngestFigures(acked[0], values, round(seconds, 2), round(values / seconds), round(client_cpu, 1))


# The database: `pulsewire db ...`, or the files and rows as they are


def db_command(revision: Revision, data_dir: Path, *args: str) -> dict[str, Any]:
    """`pulsewire db <args> --json` of this revision on this data folder; its JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEWIRE_")}
    done = revision.python(
        ["-m", "pulsewire", "db", *args, "--json", "--data-dir", str(data_dir)], DB_COMMAND_TIMEOUT_S, env
    )
    if done.returncode != 0:
        raise BenchError(f"pulsewire db {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    try:  # one object, on one line or indented over several
        result: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        raise BenchError(f"pulsewire db {' '.join(args)} printed no JSON object:\n{done.stdout[-2000:]}") from None
    return result


def has_db_commands(revision: Revision) -> bool:
    """Does this revision have `pulsewire db compact` and `db stats`?"""
    done = revision.python(["-m", "pulsewire", "db", "--help"], 60)
    return done.returncode == 0 and "compact" in done.stdout and "stats" in done.stdout


def files_on_disk(data_dir: Path) -> dict[str, int]:
    """Bytes of the SQLite file, its -wal and its -shm."""
    return {
        suffix or "db": (data_dir / (DB_FILE + suffix)).stat().st_size
        if (data_dir / (DB_FILE + suffix)).exists()
        else 0
        for suffix in ("", "-wal", "-shm")
    }


def sqlite_pages(data_dir: Path, count_readings: bool) -> dict[str, int]:
    """Page size, pages and free pages of the file (read only, beside the running server); the rows
    of `readings` too when asked (a revision without `db stats` stores one value per row)."""
    db = sqlite3.connect(f"file:{data_dir / DB_FILE}?mode=ro", uri=True)
    try:
        out = {
            "page_size": db.execute("PRAGMA page_size").fetchone()[0],
            "page_count": db.execute("PRAGMA page_count").fetchone()[0],
            "freelist_count": db.execute("PRAGMA freelist_count").fetchone()[0],
        }
        if count_readings:
            out["readings_rows"] = db.execute("SELECT count(*) FROM readings").fetchone()[0]
    finally:
        db.close()
    return out


# Queries


@dataclass(frozen=True)
class QuerySpec:
    name: str
    label: str
    keys: tuple[str, ...]
    lo: int
    hi: int  # inclusive
    interval: int | None = None
    aggs: tuple[str, ...] = ()

    @property
    def limit(self) -> int:
        span = self.hi - self.lo + 1
        return span // SECOND_MS + 1 if self.interval is None else span // self.interval + 1

    def params(self) -> dict[str, str | int]:
        params: dict[str, str | int] = {"keys": ",".join(self.keys), "start": self.lo, "end": self.hi}
        params |= {"limit": self.limit, "order": "asc"}
        if self.interval is not None:
            params |= {"interval": self.interval, "agg": ",".join(self.aggs)}
        return params


def query_specs(fleet: Fleet) -> list[QuerySpec]:
    """The six queries, each ending where the data ends (the raw hour: twelve hours before that)."""
    end = fleet.end_ms - 1
    one, every = ("temperature",), METRICS
    raw_hour = max(fleet.start_ms, fleet.end_ms - 12 * HOUR_MS)
    day, week, year = end + 1 - DAY_MS, end + 1 - WEEK_MS, end + 1 - YEAR_MS
    band = ("avg", "min", "max")
    return [
        QuerySpec("raw_hour", "raw hour, 1 metric", one, raw_hour, raw_hour + HOUR_MS - 1),
        QuerySpec("day_1m", "day of 1-min averages, 1 metric", one, day, end, MINUTE_MS, ("avg",)),
        QuerySpec("week_15m", "week of 15-min averages, 1 metric", one, week, end, 15 * MINUTE_MS, ("avg",)),
        QuerySpec("year_1h", "year of 1-hour averages, 1 metric", one, year, end, HOUR_MS, ("avg",)),
        QuerySpec(
            "dashboard_week", "dashboard week: 4 metrics, avg,min,max, 15 min", every, week, end, 15 * MINUTE_MS, band
        ),
        QuerySpec("day_view", "day view: 4 metrics, avg,min,max, 1 min", every, day, end, MINUTE_MS, band),
    ]


def expected_answer(spec: QuerySpec, truth: Truth) -> dict[str, list[dict[str, float | int]]]:
    """The answer the server must give, from the generated values."""
    out: dict[str, list[dict[str, float | int]]] = {}
    start = truth.fleet.start_ms
    for metric in spec.keys:
        column = truth.values[metric]
        if spec.interval is None:
            out[metric] = [
                {"ts": start + i * SECOND_MS, "value": column[i]} for i in truth.index_range(spec.lo, spec.hi)
            ]
            continue
        points = []
        indexes = truth.index_range(spec.lo, spec.hi)
        if indexes:
            width = spec.interval
            first, last = (start + indexes[0] * SECOND_MS) // width, (start + indexes[-1] * SECOND_MS) // width
            for bucket in range(first * width, last * width + 1, width):
                window = truth.index_range(max(bucket, spec.lo), min(bucket + width - 1, spec.hi))
                chunk = column[window.start : window.stop]
                figures = {"avg": math.fsum(chunk) / len(chunk), "min": min(chunk), "max": max(chunk)}
                names = spec.aggs if len(spec.aggs) > 1 else ("value",)
                points.append({"ts": bucket} | {n: figures[a] for n, a in zip(names, spec.aggs, strict=True)})
        out[metric] = points
    return out


def check_answer(spec: QuerySpec, got: Any, expected: dict[str, list[dict[str, float | int]]]) -> None:
    """Fail unless `got` holds exactly the expected points (values within 1e-9, relative)."""
    if not isinstance(got, dict) or set(got) != set(expected):
        raise BenchError(f"{spec.name}: expected metrics {sorted(expected)}, got {sorted(got)[:8]}")
    for metric, points in expected.items():
        answer = got[metric]
        if len(answer) != len(points):
            raise BenchError(f"{spec.name}: {metric}: {len(answer)} points, expected {len(points)}")
        for i, (have, want) in enumerate(zip(answer, points, strict=True)):
            if (
                set(have) != set(want)
                or have["ts"] != want["ts"]
                or not all(
                    isinstance(have[k], int | float) and math.isclose(have[k], want[k], rel_tol=1e-9, abs_tol=1e-9)
                    for k in want
                    if k != "ts"
                )
            ):
                raise BenchError(f"{spec.name}: {metric}: point {i} is {have}, expected {want}")


@dataclass
class QueryTiming:
    name: str
    points: int = 0
    response_kb: float = 0.0
    resolution: list[str] = field(default_factory=list)  # X-Pulsewire-Resolution values seen
    first_ms: float = 0.0  # the warm-up, checked
    times_ms: list[float] = field(default_factory=list)


def time_queries(server: Server, fleet: Fleet, truth: Truth, rounds: int) -> dict[str, QueryTiming]:
    """One checked warm-up per query, then `rounds` rounds of all of them in turn."""
    specs = query_specs(fleet)
    path = f"/api/devices/{fleet.ids[fleet.checked]}/telemetry"
    timings = {spec.name: QueryTiming(spec.name) for spec in specs}
    firsts: dict[str, bytes] = {}
    with httpx.Client(base_url=server.base, timeout=300) as client:
        for spec in specs:
            ms, resp = _timed_get(client, path, spec)
            check_answer(spec, resp.json(), expected_answer(spec, truth))
            firsts[spec.name] = resp.content
            timing = timings[spec.name]
            timing.first_ms, timing.response_kb = ms, round(len(resp.content) / 1024, 1)
            timing.points = sum(len(points) for points in resp.json().values())
        for _ in range(rounds):
            for spec in specs:
                ms, resp = _timed_get(client, path, spec)
                if resp.content != firsts[spec.name]:  # same data, same answer
                    check_answer(spec, resp.json(), expected_answer(spec, truth))
                timings[spec.name].times_ms.append(ms)
                seen = resp.headers.get("x-pulsewire-resolution")
                if seen is not None and seen not in timings[spec.name].resolution:
                    timings[spec.name].resolution.append(seen)
    return timings


def _timed_get(client: httpx.Client, path: str, spec: QuerySpec) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    resp = client.get(path, params=spec.params())
    ms = round(1000 * (time.perf_counter() - started), 2)
    if resp.status_code != 200:
        raise BenchError(f"{spec.name}: GET {path}: HTTP {resp.status_code} {resp.text[:300]}")
    return ms, resp


# One run: one revision, a fresh server and database


@dataclass
class Run:
    revision: str
    round: int
    ok: bool = False
    failure: str | None = None
    ingest: IngestFigures | None = None
    committed_values: float | None = None
    bytes_before_compaction: int | None = None
    compaction: dict[str, Any] | None = None  # `db compact --json`, with wall_seconds and values_per_s
    stats: dict[str, Any] | None = None  # `db stats --json`, or what was measured without it
    files: dict[str, int] = field(default_factory=dict)
    pages: dict[str, int] = field(default_factory=dict)
    bytes_on_disk: int | None = None
    stored_values: int | None = None
    bytes_per_value: float | None = None
    bytes_per_value_vacuumed: float | None = None  # after VACUUM, taken last: without the free pages
    queries: dict[str, QueryTiming] = field(default_factory=dict)
    server_log: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    fleet: Fleet
    batch: int
    window: int
    queries: int
    server_flags: list[str]
    work_dir: Path | None


def run_once(revision: Revision, compacts: bool, plan: Plan, truth: Truth, number: int) -> Run:
    run = Run(revision.label, number)
    with tempfile.TemporaryDirectory(prefix="pulsewire-storage-", dir=plan.work_dir) as tmp:
        server = revision_server(revision, Path(tmp), plan.server_flags)
        try:
            server.start()
            measure(server, revision, compacts, plan, truth, run)
            if (code := server.crashed()) is not None:
                raise BenchError(f"server exited with {code}:\n{server.log_tail()}")
            run.ok = True
        except (*RUN_FAILURES, sqlite3.Error, OSError, subprocess.TimeoutExpired) as exc:
            run.failure = str(exc) or type(exc).__name__
            say("  run failed: " + run.failure.replace("\n", "\n    "))
        finally:
            stopped = server.stop()
            run.server_log = server.log_lines()[:LOG_LINES_KEPT]
            if "killed" in stopped:
                run.notes.append(f"server {stopped}")
    return run


def measure(server: Server, revision: Revision, compacts: bool, plan: Plan, truth: Truth, run: Run) -> None:
    fleet, data_dir = plan.fleet, server.data_dir
    say(f"  registering {fleet.devices} boards, sending {fleet.stored_values:,} values...")
    tokens = server.register_many(fleet.ids)
    with ServerSampler(server.pid) as sampler:
        figures = asyncio.run(ingest(f"{server.ws_base}/ws/device", tokens, fleet, plan.batch, plan.window))
    figures.server_peak_rss_mb = round(sampler.peak_rss / 2**20, 1)
    if sampler.cpu_seconds is not None:
        figures.server_cpu_pct = round(100 * sampler.cpu_seconds / figures.seconds, 1)
    run.ingest = figures
    run.committed_values = summarize_metrics(server.metrics())["committed_values"]
    run.bytes_before_compaction = sum(files_on_disk(data_dir).values())
    say(f"  ingest: {figures.values_per_s:,.0f} values/s; {run.bytes_before_compaction / 2**20:,.1f} MB on disk")
    if compacts:
        compact(revision, data_dir, run)
    figure_storage(revision, data_dir, compacts, run)
    say(f"  timing queries: a checked warm-up, then {plan.queries} rounds of {len(query_specs(fleet))}...")
    run.queries = time_queries(server, fleet, truth, plan.queries)
    say("  " + "; ".join(f"{name} {_median(t.times_ms, True)} ms" for name, t in run.queries.items()))
    if run.committed_values is not None and run.committed_values != fleet.stored_values:
        run.notes.append(f"server counted {run.committed_values:,.0f} committed values, sent {fleet.stored_values:,}")
    if compacts and run.stored_values:
        run.bytes_per_value_vacuumed = round(vacuumed_bytes(data_dir) / run.stored_values, 3)


def vacuumed_bytes(data_dir: Path) -> int:
    """The files' size once VACUUM has given the free pages back and the WAL is checkpointed away.

    Run after every other figure (it rewrites the file): SQLite keeps the pages a table once needed,
    so after a backfill the hot table's high-water mark stays in the file, reused but never returned;
    this says what the stored data needs without it."""
    db = sqlite3.connect(data_dir / DB_FILE, isolation_level=None, timeout=60)
    try:
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return sum(files_on_disk(data_dir).values())


def compact(revision: Revision, data_dir: Path, run: Run) -> None:
    say("  pulsewire db compact (server up)...")
    started = time.perf_counter()
    result = db_command(revision, data_dir, "compact")
    wall = time.perf_counter() - started
    seconds = float(result.get("seconds") or wall)
    values = int(result.get("values") or 0)
    run.compaction = {
        **result,
        "wall_seconds": round(wall, 2),
        "values_per_s": round(values / seconds) if seconds else None,
    }
    say(f"    {values:,} values in {result.get('windows')} windows, {seconds:.1f} s ({wall:.1f} s with start-up)")


def figure_storage(revision: Revision, data_dir: Path, compacts: bool, run: Run) -> None:
    """Bytes on disk and stored values: from `db stats`, else measured here."""
    run.files = files_on_disk(data_dir)
    run.pages = sqlite_pages(data_dir, count_readings=not compacts)
    if compacts:
        run.stats = db_command(revision, data_dir, "stats")
        run.bytes_on_disk, run.stored_values = int(run.stats["bytes_on_disk"]), int(run.stats["stored_values"])
        measured = sum(run.files.values())
        if abs(measured - run.bytes_on_disk) > 0.01 * measured:
            run.notes.append(f"db stats says {run.bytes_on_disk:,} bytes on disk, the files hold {measured:,}")
    else:
        run.bytes_on_disk, run.stored_values = sum(run.files.values()), run.pages["readings_rows"]
    run.bytes_per_value = round(run.bytes_on_disk / run.stored_values, 3) if run.stored_values else None
    say(
        f"  {run.bytes_on_disk / 2**20:,.1f} MB on disk, {run.stored_values:,} values: {run.bytes_per_value} bytes each"
    )


# Rounds: every revision in turn, the order alternating


@dataclass
class Measured:
    """A revision under test: what it is and its runs."""

    revision: Revision
    compacts: bool  # it has `pulsewire db compact` and `db stats`
    schema: str
    runs: list[Run] = field(default_factory=list)


def run_rounds(measured: list[Measured], plan: Plan, truth: Truth, repeats: int) -> None:
    """Each round runs every revision once; odd rounds in the given order, even ones reversed, so that
    neither always goes first on a machine that warms up or gets busier."""
    for number in range(1, repeats + 1):
        order = measured if number % 2 else measured[::-1]
        for m in order:
            what = "compacts" if m.compacts else "no `db compact`: measured as stored"
            say(f"round {number}/{repeats}: {m.revision.label} ({m.revision.commit[:12]}, {what})...")
            m.runs.append(run_once(m.revision, m.compacts, plan, truth, number))


def _median(values: list[float], lower_is_better: bool) -> float | None:
    """The median; with an even count, the less flattering of the middle two."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[len(ordered) // 2] if lower_is_better else ordered[(len(ordered) - 1) // 2]


def _spread(values: list[float], lower_is_better: bool) -> dict[str, float | None]:
    return {
        "median": _median(values, lower_is_better),
        "min": min(values) if values else None,
        "max": max(values) if values else None,
    }


# (key, label, how to read it off a run, lower is better)
RUN_FIGURES: list[tuple[str, str, Any, bool]] = [
    ("bytes_per_value", "bytes per stored value on disk", lambda r: r.bytes_per_value, True),
    ("bytes_per_value_vacuumed", "  after VACUUM (free pages returned)", lambda r: r.bytes_per_value_vacuumed, True),
    ("mb_on_disk", "MB on disk (file, -wal, -shm)", lambda r: r.bytes_on_disk and r.bytes_on_disk / 2**20, True),
    ("wal_mb", "  of which the -wal file, MB", lambda r: r.files and r.files["-wal"] / 2**20, True),
    ("free_mb", "  of which free pages in the file, MB", lambda r: r.pages and _free_bytes(r.pages) / 2**20, True),
    ("block_bytes_per_value", "bytes per value in blocks and rollups", lambda r: _block_bytes_per_value(r), True),
    ("stored_values", "stored values", lambda r: r.stored_values, False),
    (
        "bytes_per_value_before_compaction",
        "bytes per value before compaction",
        lambda r: r.bytes_before_compaction and r.stored_values and r.bytes_before_compaction / r.stored_values,
        True,
    ),
    ("ingest_values_per_s", "ingest, values/s acked", lambda r: r.ingest and r.ingest.values_per_s, False),
    ("compaction_values_per_s", "compaction, values/s", lambda r: r.compaction and r.compaction["values_per_s"], False),
    ("compaction_seconds", "compaction, s", lambda r: r.compaction and r.compaction.get("seconds"), True),
]


def _free_bytes(pages: dict[str, int]) -> int:
    return pages["freelist_count"] * pages["page_size"]


def _block_bytes_per_value(run: Run) -> float | None:
    """What `db stats` counts in blocks (raw and rollups) per stored value: the data without the file's
    slack (free pages, the -wal file, the hot table, indexes)."""
    if run.stats is None or not run.stored_values:
        return None
    return sum(int(r.get("bytes") or 0) for r in run.stats["resolutions"].values()) / run.stored_values


def summarize(m: Measured, names: list[str]) -> dict[str, dict[str, float | None]]:
    """Median and range of every figure over the runs that worked; a query's over all its timed requests."""
    ok = [run for run in m.runs if run.ok]
    out = {}
    for key, _label, read, lower in RUN_FIGURES:
        values = [float(v) for v in (read(run) for run in ok) if v is not None]
        out[key] = _spread(values, lower)
    for name in names:
        out[name] = _spread([ms for run in ok for ms in run.queries[name].times_ms], True)
    return out


def targets(summary: dict[str, dict[str, float | None]]) -> list[dict[str, Any]]:
    """The issue's four targets, judged on the current tree's medians."""
    goals = [("bytes_per_value", f"<= {TARGET_BYTES_PER_VALUE:g} B", TARGET_BYTES_PER_VALUE)]
    goals += [(name, f"< {ms:g} ms", ms) for name, ms in TARGET_MS.items()]
    out = []
    for key, text, goal in goals:
        value = summary[key]["median"]
        met = None if value is None else (value <= goal if key == "bytes_per_value" else value < goal)
        out.append(
            {"target": f"{key} {text}", "goal_text": text, "figure": key, "goal": goal, "value": value, "met": met}
        )
    return out


# Report


def _cell(spread: dict[str, float | None], spec: str) -> str:
    median, low, high = spread["median"], spread["min"], spread["max"]
    if median is None:
        return "-"
    if low == high:
        return format(median, spec)
    return f"{format(median, spec)} ({format(low, spec)}-{format(high, spec)})"


def _format_spec(key: str) -> str:
    if "bytes_per_value" in key:
        return ".2f"
    if key in ("mb_on_disk", "wal_mb", "free_mb", "compaction_seconds"):
        return ",.1f"
    if key in ("stored_values", "ingest_values_per_s", "compaction_values_per_s"):
        return ",.0f"
    return ".1f"  # milliseconds


def format_table(measured: list[Measured], specs: list[QuerySpec], summaries: list[dict[str, Any]]) -> list[str]:
    labels = [(key, label) for key, label, _, _ in RUN_FIGURES] + [(s.name, f"{s.label}, ms") for s in specs]
    head = ["figure", *(f"{m.revision.label} ({m.revision.commit[:7]})" for m in measured)]
    if len(measured) == 2:
        head.append("ratio")
    head += ["target", "mark"]
    goals = {t["figure"]: t for t in targets(summaries[0])}
    rows = [head]
    for key, label in labels:
        row = [label, *(_cell(s[key], _format_spec(key)) for s in summaries)]
        if len(measured) == 2:
            row.append(_ratio(summaries[0][key]["median"], summaries[1][key]["median"]))
        goal = goals.get(key)
        row += [goal["goal_text"] if goal else "", _mark(goal["met"]) if goal else ""]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return [line.rstrip() for line in lines]


def _ratio(value: float | None, base: float | None) -> str:
    return "-" if value is None or not base else f"x{value / base:.2f}"


def _mark(met: bool | None) -> str:
    return {True: "met", False: "SHORT", None: "-"}[met]


def footnotes(measured: list[Measured], plan: Plan, summaries: list[dict[str, Any]]) -> list[str]:
    fleet = plan.fleet
    repeats = max(len(m.runs) for m in measured)
    out = [
        f"Fleet: {fleet.devices} board(s) x {len(METRICS)} metrics x {fleet.count:,} s at 1 Hz = "
        f"{fleet.stored_values:,} values, sent in batches of {plan.batch} readings, {plan.window} un-acked per board.",
        f"Queries: the middle board; a checked warm-up, then {plan.queries} interleaved rounds per run; median "
        f"(range) over all timed requests. Run figures: median (range) of {repeats} run(s) per revision.",
        f"Machine: {os.cpu_count()} cores shared by the server, the devices and the queries; load average "
        f"{[round(x, 2) for x in os.getloadavg()]}. SQLite, default settings.",
    ]
    if len(measured) == 2:
        out.append(f"ratio: {measured[0].revision.label} / {measured[1].revision.label}, on the medians.")
    revisions = "; ".join(f"{m.revision.label} {m.revision.commit[:12]}, schema {m.schema}" for m in measured)
    out.append(f"Revisions (each checked to import its own package): {revisions}.")
    for m in measured:
        if not m.compacts:
            out.append(f"{m.revision.label}: no `pulsewire db compact`/`db stats`: sized and counted as stored.")
        out += _run_notes(m)
    return out


def _run_notes(m: Measured) -> list[str]:
    out = []
    for run in m.runs:
        for note in ([f"FAILED: {run.failure.splitlines()[0]}"] if run.failure else []) + run.notes:
            out.append(f"  {m.revision.label}, round {run.round}: {note}")
        for line in run.server_log[:5]:
            out.append(f"  {m.revision.label}, round {run.round}: server log: {line[:200]}")
        resolutions = {name: t.resolution for name, t in run.queries.items() if t.resolution}
        if resolutions and run.round == 1:
            seen = ", ".join(f"{name} {'|'.join(r)}" for name, r in resolutions.items())
            out.append(f"  {m.revision.label}: X-Pulsewire-Resolution: {seen}")
    return out


def report_json(measured: list[Measured], plan: Plan, summaries: list[dict[str, Any]]) -> dict[str, Any]:
    specs = query_specs(plan.fleet)
    return {
        "benchmark": "pulsewire storage",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "config": {
            "devices": plan.fleet.devices,
            "seconds": plan.fleet.count,
            "start_ms": plan.fleet.start_ms,
            "stored_values": plan.fleet.stored_values,
            "batch": plan.batch,
            "window": plan.window,
            "query_rounds": plan.queries,
            "server_flags": plan.server_flags,
        },
        "queries": [asdict(s) | {"params": s.params()} for s in specs],
        "revisions": {
            m.revision.label: {
                "commit": m.revision.commit,
                "ref": m.revision.ref,
                "schema": m.schema,
                "compacts": m.compacts,
                "summary": summary,
                "runs": [asdict(run) for run in m.runs],
            }
            for m, summary in zip(measured, summaries, strict=True)
        },
        "targets": targets(summaries[0]),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import psutil  # noqa: F401  (used by ServerSampler)
    except ImportError:
        give_up("psutil is needed to sample the server: pip install psutil")
    seconds = round(3600 * args.hours) if args.hours else round(86_400 * args.days)
    fleet = Fleet.ending_before(int(time.time() * 1000), args.devices, seconds)
    plan = Plan(fleet, args.batch, args.window, args.queries, args.server_flag, args.work_dir)
    say(
        f"fleet: {fleet.devices} board(s) x {fleet.count:,} s x {len(METRICS)} metrics = {fleet.stored_values:,} values"
    )
    truth = Truth.of(fleet)
    with contextlib.ExitStack() as stack:
        revisions = [current()]
        try:
            if not args.no_baseline:
                revisions.append(stack.enter_context(checkout(args.baseline_ref)))
            measured = [Measured(r, has_db_commands(r), check_imports(r)) for r in revisions]
        except BenchError as exc:
            give_up(str(exc))
        run_rounds(measured, plan, truth, args.repeat)
    names = [spec.name for spec in query_specs(fleet)]
    summaries = [summarize(m, names) for m in measured]
    table = "\n".join(
        [*format_table(measured, query_specs(fleet), summaries), "", *footnotes(measured, plan, summaries)]
    )
    if args.json:
        print(table, file=sys.stderr)
        print(json.dumps(report_json(measured, plan, summaries)))
    else:
        print(table)
    return 0 if all(run.ok for m in measured for run in m.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
