#!/usr/bin/env python3
"""Dashboard benchmark: does the browser dashboard keep up while devices send 1,000 readings/s?

What is measured
- A real `pulsewire serve` (fresh SQLite data folder, default settings, like bench/ingest.py)
  gets --devices devices registered through the admin API. A load process (Python asyncio
  `websockets` clients, one per device, in a process of its own so that its pacing does not share
  the GIL with Playwright) drives the device channel like firmware would: hello -> welcome, then
  every 50 ms each device sends the readings due since its last batch (--rate readings/s in all,
  --values values each, timestamps spread evenly), with at most 8 batches waiting for their ack;
  readings that do not fit in the window wait in the device's buffer. Device ticks are staggered,
  not all on one clock. The achieved rate is *acked* readings/s over the measured window.
- One scenario per page, each on its own fresh server and fresh headless Chromium:
  overview: `/` (a card per device with latest values and sparklines);
  device: `/#/device/<first device>?range=5m` (a uPlot chart per metric, live).
  The page is opened and connected to the live channel before the load starts; figures are
  taken over --seconds after --warmup seconds of load.
- In the page (an init script, installed before the page's own code runs): a requestAnimationFrame
  loop records every frame's time, and a PerformanceObserver records long tasks (> 50 ms). From
  these: frames/s, frame interval p50/p95/p99/max, frames missed against a 60 Hz clock, and the
  long tasks' count, total and longest.
- Through the DevTools protocol: main-thread busy time (TaskDuration; with script, layout and
  style shares), DOM nodes, and the JS heap at the start and end of the window, both as the page
  sees it (`performance.memory.usedJSHeapSize`, which Chromium rounds to coarse buckets unless
  started with --enable-precise-memory-info) and exactly after a forced garbage collection.
- The live channel as the page receives it: Playwright sees every WebSocket frame the page gets;
  telemetry messages and the readings in them are counted (nothing is added to the page for it).
  Live sockets opened are counted too: more than one means the page was dropped (too slow, close
  1013) or lost its connection, and reconnected.
- That the page really changed: the cards' value texts (overview), and each chart's
  `data-points` attribute and value (device view), read at the start and the end of the window.
- CPU over the window, in % of one core: server, load process, Chromium's renderer (the page's
  main thread, compositor, raster), the rest of Chromium, and this script with Playwright's driver.
  They all share the machine's cores.

A run fails (exit status 1) when it could not be done or its figures would mean nothing: the
server did not start, the load could not be driven (no readings acked), the page did not connect
or received nothing, its content did not change, or the page reported an error (an uncaught
exception, a console error, a crash). A slow page is a result, not a failure: read the table.

Headless Chromium draws at most 60 frames/s (requestAnimationFrame at ~16.7 ms): 60 frames/s
with short intervals means the page kept up with the display.

This is a benchmark, not a test: run it by hand, never inside a timed unit test.
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
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from harness.cli import LOG_LINES_KEPT, BenchError, give_up, positive_float, positive_int, say
from harness.server import RUN_FAILURES, Server, bench_server, summarize_metrics
from tests.support.chromium import CHROMIUM, LAUNCH_ARGS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, WebSocket
    from websockets.asyncio.client import ClientConnection

VIEWPORT = {"width": 1280, "height": 900}

DEFAULT_DEVICES = 20
DEFAULT_RATE = 1000
DEFAULT_VALUES = 4
DEFAULT_SECONDS = 20.0
DEFAULT_WARMUP = 3.0
TICK_S = 0.05  # each device sends what is due every 50 ms
WINDOW = 8  # un-acked batches per device (docs/protocol.md section 1)
MAX_VALUES = 64
MAX_BATCH_BYTES = 48 * 1024  # well under the 64 KiB frame limit
METRIC_NAMES = ("temperature", "humidity", "pressure", "battery")
DRAIN_S = 3.0
CONNECT_TIMEOUT_S = 30.0
PAGE_LIVE_TIMEOUT_S = 20.0
FRAME_MS_60HZ = 1000 / 60
KEEP_UP_SHARE = 0.95

SCENARIOS = {
    "overview": "overview page: /",
    "device": "device view: /#/device/<id>?range=5m",
}

# Installed before the page's own scripts: frame times and long tasks.
INSTRUMENT_JS = """
(() => {
  const rec = { frames: [], longtasks: [], problems: [] };
  Object.defineProperty(window, "__pulsewireBench", { value: rec, enumerable: false });
  const loop = (t) => {
    rec.frames.push(t);
    requestAnimationFrame(loop);
  };
  requestAnimationFrame(loop);
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) rec.longtasks.push([e.startTime, e.duration]);
    }).observe({ type: "longtask", buffered: true });
  } catch (err) {
    rec.problems.push(`longtask observer: ${err}`);
  }
})();
"""

READ_INSTRUMENT_JS = """
([from, to]) => {
  const rec = window.__pulsewireBench;
  if (!rec) return null;
  const inside = (t) => t >= from && t <= to;
  return {
    frames: rec.frames.filter(inside),
    longtasks: rec.longtasks.filter((e) => inside(e[0])),
    problems: rec.problems,
  };
}
"""

# What the page shows: overview cards' values and sparkline labels; device-view charts.
SNAPSHOT_JS = """
() => {
  const cards = {};
  for (const c of document.querySelectorAll(".card[data-device]")) {
    cards[c.dataset.device] = [...c.querySelectorAll(".value")].map((v) => v.textContent).join("|");
  }
  const sparks = [...document.querySelectorAll("canvas.spark")].map((c) => c.getAttribute("aria-label") || "");
  const charts = {};
  for (const s of document.querySelectorAll("section.chart[data-metric]")) {
    const points = s.dataset.points;
    charts[s.dataset.metric] = {
      points: points === undefined ? null : Number(points),
      value: s.querySelector(".value")?.textContent ?? "",
    };
  }
  return {
    conn: document.getElementById("conn")?.dataset.state ?? null,
    cards,
    sparks: sparks.slice(0, 1),
    charts,
    info: document.querySelector(".range-info")?.textContent ?? null,
  };
}
"""


# Command line


def _values(text: str) -> int:
    value = positive_int(text)
    if value > MAX_VALUES:
        raise argparse.ArgumentTypeError(f"at most {MAX_VALUES} values per reading (docs/protocol.md section 1)")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/dashboard.py",
        description="Benchmark the browser dashboard under load: a real Pulsewire server, simulated devices "
        "sending --rate readings/s over the device channel, and the dashboard open in headless Chromium "
        "(Playwright). Reports frames/s, frame intervals, long tasks, main-thread time, JS heap and the readings "
        "the page received, per page. Each scenario gets a fresh server (SQLite) and a fresh browser. "
        f"Needs Chromium at {CHROMIUM} (apt-get install -y chromium) and the `playwright` Python package.",
        epilog="Example: .venv/bin/python bench/dashboard.py --devices 20 --rate 1000 --seconds 20. "
        "Progress goes to stderr; the results tables to stdout (to stderr with --json, so stdout is pure JSON). "
        "Exit status: 0 when every scenario ran; 1 when one failed: the server, the load or the page failed, "
        "the page received or showed nothing, or it reported an error (uncaught exception, console error, "
        "crash); 2 when the set-up is missing. A slow page is a result, not a failure.",
    )
    parser.add_argument(
        "--devices",
        type=positive_int,
        default=DEFAULT_DEVICES,
        help=f"simulated devices, each on its own WebSocket (default: {DEFAULT_DEVICES})",
    )
    parser.add_argument(
        "--rate",
        type=positive_int,
        default=DEFAULT_RATE,
        help=f"readings/s in all, spread evenly over the devices (default: {DEFAULT_RATE:,})",
    )
    parser.add_argument(
        "--values",
        type=_values,
        default=DEFAULT_VALUES,
        help=f"values per reading, i.e. metrics per device (default: {DEFAULT_VALUES}; at most {MAX_VALUES})",
    )
    parser.add_argument(
        "--seconds",
        type=positive_float,
        default=DEFAULT_SECONDS,
        help=f"measured seconds per scenario (default: {DEFAULT_SECONDS:g})",
    )
    parser.add_argument(
        "--warmup",
        type=_non_negative_float,
        default=DEFAULT_WARMUP,
        help=f"seconds of load before the measured window starts (default: {DEFAULT_WARMUP:g})",
    )
    parser.add_argument(
        "--scenario",
        choices=list(SCENARIOS),
        nargs="+",
        default=list(SCENARIOS),
        help="which pages to measure, in this order: " + "; ".join(f"{k} = {v}" for k, v in SCENARIOS.items()),
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="also print the results as one JSON object on stdout (the tables then go to stderr)",
    )
    args = parser.parse_args(argv)
    if args.rate / args.devices > 1000:
        parser.error("at most 1,000 readings/s per device (timestamps are whole milliseconds): add --devices")
    return args


# Load: simulated devices on the device channel, in a process of their own

# Shared counters, written by the load process only.
CONNECTED, SENT, ACKED, REJECTED, BATCHES, BUFFERED = range(6)
COUNTERS = 6


def metric_names(count: int) -> list[str]:
    return [*METRIC_NAMES[:count], *(f"value{i}" for i in range(len(METRIC_NAMES), count))]


def load_process(
    url: str,
    tokens: list[str],
    rate: int,
    values: int,
    counters: Any,
    window: Any,
    stop: Any,
    results: Any,
) -> None:
    """Entry point of the load process: drive every device until `stop` is set, then report.

    `window` holds the measured window's start and end (time.monotonic(), 0 while unknown), written
    by the parent: ack round trips are reported for batches sent inside it.
    """
    try:
        summary = asyncio.run(_drive_devices(url, tokens, rate, values, counters, window, stop))
    except BaseException as exc:  # noqa: BLE001  (anything goes back to the parent as text)
        results.put({"error": f"{type(exc).__name__}: {exc}"})
    else:
        results.put(summary)


@dataclass
class Fleet:
    """What the simulated devices of the load process share: the workload, the counters the parent
    reads, the ack round trips and problems for the summary, and the signal to stop."""

    counters: Any
    names: list[str]  # a metric per value
    per_device: float  # readings/s each
    max_batch: int  # readings per batch at most
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    acks: list[tuple[float, float]] = field(default_factory=list)  # (monotonic send time, round trip ms)
    problems: list[str] = field(default_factory=list)


async def _drive_devices(
    url: str, tokens: list[str], rate: int, values: int, counters: Any, window: Any, stop: Any
) -> dict[str, Any]:
    # About 20 bytes of JSON per value and 40 per reading; batches stay far below the frame limit.
    max_batch = max(1, MAX_BATCH_BYTES // (40 + 24 * values))
    fleet = Fleet(counters, metric_names(values), rate / len(tokens), max_batch)
    watcher = asyncio.create_task(_watch_stop(stop, fleet.stopping))
    start = time.monotonic() + 0.5
    spread = TICK_S / len(tokens)  # device ticks are staggered, not all on one clock
    runs = [SimulatedDevice(i, fleet).run(url, token, start + i * spread) for i, token in enumerate(tokens)]
    outcomes = await asyncio.gather(*runs, return_exceptions=True)
    watcher.cancel()
    return _load_summary(outcomes, fleet, window)


async def _watch_stop(stop: Any, stopping: asyncio.Event) -> None:
    """`stop` is the parent's multiprocessing event, which cannot be awaited: polled."""
    while not stop.is_set():
        await asyncio.sleep(0.02)
    stopping.set()


def _load_summary(outcomes: list[Any], fleet: Fleet, window: Any) -> dict[str, Any]:
    """Failed devices, problems, and the ack round trips of the batches sent inside the measured window."""
    failures = [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)]
    start_w, end_w = window[0], window[1]
    ack_ms = sorted(ms for sent, ms in fleet.acks if start_w <= sent <= (end_w or math.inf))
    return {
        "failures": failures[:10],
        "failed_devices": len(failures),
        "problems": fleet.problems,
        "ack_p50_ms": round(_percentile(ack_ms, 50), 1) if ack_ms else None,
        "ack_p99_ms": round(_percentile(ack_ms, 99), 1) if ack_ms else None,
    }


class SimulatedDevice:
    """One device on the device channel, driven as firmware would: hello -> welcome, then every TICK_S
    the readings due since its last batch, with at most WINDOW batches waiting for their ack (readings
    that do not fit wait in its buffer); at the stop, it waits for its last acks."""

    def __init__(self, index: int, fleet: Fleet) -> None:
        self.index = index
        self.fleet = fleet
        self.rng = random.Random(index)
        self.level = [self.rng.uniform(10, 90) for _ in fleet.names]
        self.buffered: list[dict[str, Any]] = []
        self.inflight: dict[int, tuple[int, float]] = {}  # seq -> (readings, monotonic send time)
        self.slot = asyncio.Event()  # an answer freed a place in the window
        self.seq = 0
        self.made = 0  # readings made so far
        self.last_ts = 0

    async def run(self, url: str, token: str, start_at: float) -> None:
        from websockets.asyncio.client import connect
        from websockets.typing import Subprotocol

        async with connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            subprotocols=[Subprotocol("pulsewire.v1")],
            open_timeout=CONNECT_TIMEOUT_S,
            ping_interval=None,  # the server pings; the client answers by itself
            max_size=2**20,
        ) as ws:
            await self._hello(ws)
            receiver = asyncio.create_task(self._receive(ws))
            try:
                await self._stream(ws, receiver, start_at)
                await self._drain(receiver)
                self._check_connection(ws, receiver)
            finally:
                receiver.cancel()
                await asyncio.gather(receiver, return_exceptions=True)

    async def _hello(self, ws: ClientConnection) -> None:
        await ws.send(orjson.dumps({"type": "hello", "fw": "bench-dashboard", "uptime": 1000}).decode())
        welcome = orjson.loads(await asyncio.wait_for(ws.recv(), CONNECT_TIMEOUT_S))
        if welcome.get("type") != "welcome":
            raise BenchError(f"device {self.index}: expected welcome, got {welcome}")
        self.fleet.counters[CONNECTED] += 1

    async def _receive(self, ws: ClientConnection) -> None:
        """Acks and error answers each free a place in the window (a refused batch is not sent again)."""
        counters = self.fleet.counters
        async for raw in ws:
            msg = orjson.loads(raw)
            kind = msg.get("type")
            if kind == "ack" and msg.get("seq") in self.inflight:
                count, sent_at = self.inflight.pop(msg["seq"])
                self.fleet.acks.append((sent_at, 1000 * (time.monotonic() - sent_at)))
                counters[ACKED] += count
                counters[BATCHES] += 1
                self.slot.set()
            elif kind == "error":
                self.inflight.pop(msg.get("seq"), None)
                counters[REJECTED] += 1
                if len(self.fleet.problems) < 10:
                    self.fleet.problems.append(f"device {self.index}: error answer {msg}")
                self.slot.set()
            elif kind == "command":  # not expected; answered so the server does not wait
                await ws.send(orjson.dumps({"type": "result", "id": msg.get("id"), "ok": True}).decode())

    async def _stream(self, ws: ClientConnection, receiver: asyncio.Task[None], start_at: float) -> None:
        """Every TICK_S until the stop: make the readings due, send what the window has room for."""
        # Each device keeps its own phase in the 50 ms tick, even when connecting took longer.
        late = time.monotonic() - start_at
        if late > 0:
            start_at += math.ceil(late / TICK_S) * TICK_S
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        t0, wall0 = time.monotonic(), time.time() * 1000
        stopping = self.fleet.stopping
        tick = 0
        while not stopping.is_set() and not receiver.done():
            self._make_readings(math.floor((time.monotonic() - t0) * self.fleet.per_device), wall0)
            await self._send_window(ws)
            tick += 1
            wait = t0 + tick * TICK_S - time.monotonic()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), wait)

    def _make_readings(self, due: int, wall0: float) -> None:
        """Buffer the readings up to number `due`: timestamps spread evenly from wall0, each ms used once."""
        per_device = self.fleet.per_device
        for k in range(self.made, due):
            ts = max(int(wall0 + k * 1000 / per_device), self.last_ts + 1)
            self.last_ts = ts
            for i in range(len(self.level)):
                self.level[i] += self.rng.uniform(-0.5, 0.5)
            values = {n: round(v, 2) for n, v in zip(self.fleet.names, self.level, strict=True)}
            self.buffered.append({"ts": ts, "values": values})
        self.made = max(self.made, due)

    async def _send_window(self, ws: ClientConnection) -> None:
        """Send buffered readings in batches while the window has room."""
        counters, size = self.fleet.counters, self.fleet.max_batch
        while self.buffered and len(self.inflight) < WINDOW:
            batch, self.buffered = self.buffered[:size], self.buffered[size:]
            self.seq += 1
            self.inflight[self.seq] = (len(batch), time.monotonic())
            await ws.send(orjson.dumps({"type": "telemetry", "seq": self.seq, "data": batch}).decode())
            counters[SENT] += len(batch)
        counters[BUFFERED] = max(counters[BUFFERED], len(self.buffered))

    async def _drain(self, receiver: asyncio.Task[None]) -> None:
        """Give the last batches their acks, as a device would before going quiet."""
        self.slot.clear()
        deadline = time.monotonic() + DRAIN_S
        while self.inflight and not receiver.done() and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.slot.wait(), deadline - time.monotonic())
            self.slot.clear()

    def _check_connection(self, ws: ClientConnection, receiver: asyncio.Task[None]) -> None:
        """A connection that failed or that the server closed before the stop fails the device."""
        if receiver.done() and receiver.exception() is not None:
            raise BenchError(f"device {self.index}: connection failed: {receiver.exception()!r}")
        if receiver.done() and not self.fleet.stopping.is_set():
            raise BenchError(f"device {self.index}: the server closed the connection ({ws.close_code})")


class Load:
    """The load process, seen from here: start, counters, stop."""

    def __init__(self, port: int, tokens: list[str], rate: int, values: int) -> None:
        ctx = mp.get_context("spawn")  # Playwright runs threads here: no fork
        self.counters = ctx.Array("q", COUNTERS, lock=False)
        self.window = ctx.Array("d", 2, lock=False)
        self.stop_event = ctx.Event()
        self.results = ctx.Queue()
        self.proc = ctx.Process(
            target=load_process,
            args=(
                f"ws://127.0.0.1:{port}/ws/device",
                tokens,
                rate,
                values,
                self.counters,
                self.window,
                self.stop_event,
                self.results,
            ),
            name="pulsewire-bench-load",
            daemon=True,
        )
        self.devices = len(tokens)

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def start(self) -> None:
        self.proc.start()
        deadline = time.monotonic() + CONNECT_TIMEOUT_S + 10
        while self.counters[CONNECTED] < self.devices:
            if not self.proc.is_alive() or time.monotonic() > deadline:
                summary = self.finish()
                raise BenchError(
                    f"only {self.counters[CONNECTED]} of {self.devices} devices connected: "
                    + "; ".join(summary.get("failures") or [summary.get("error") or "no reason given"])
                )
            time.sleep(0.05)

    def read(self, index: int) -> int:
        return int(self.counters[index])

    def finish(self) -> dict[str, Any]:
        """Stop the devices (they drain their acks first) and return the load's summary."""
        self.stop_event.set()
        summary: dict[str, Any] = {"error": "the load process ended without a summary"}
        with contextlib.suppress(Exception):
            summary = self.results.get(timeout=DRAIN_S + 15)
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
            summary.setdefault("problems", []).append("the load process did not exit; killed")
        return summary


# CPU by process


def cpu_snapshot(server_pid: int, load_pid: int | None) -> dict[str, float]:
    """CPU seconds so far by role: server, load, chromium renderer, chromium other, bench; and machine,
    the whole machine's busy time (all cores, every process)."""
    import psutil

    me = psutil.Process()
    server_pids: set[int] = {server_pid}
    with contextlib.suppress(psutil.Error):
        server_pids |= {c.pid for c in psutil.Process(server_pid).children(recursive=True)}
    totals: Counter[str] = Counter()
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            seconds = times.user + times.system
            if proc.pid in server_pids:
                role = "server"
            elif proc.pid == load_pid:
                role = "load"
            elif "chrom" in proc.name().lower():
                role = "chromium_renderer" if "--type=renderer" in proc.cmdline() else "chromium_other"
            else:
                role = "bench"  # this script and Playwright's driver (node)
        except psutil.Error:
            continue
        totals[role] += seconds
    machine = psutil.cpu_times()
    totals["machine"] = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
    return dict(totals)


# One scenario


@dataclass
class Scenario:
    name: str
    path: str
    ok: bool = False
    failure: str | None = None
    window_s: float | None = None
    # load
    acked: int | None = None
    acked_per_s: float | None = None
    sent_per_s: float | None = None
    rejected: int | None = None
    max_buffered: int | None = None
    ack_p50_ms: float | None = None
    ack_p99_ms: float | None = None
    # frames
    frames: int | None = None
    fps: float | None = None
    frame_p50_ms: float | None = None
    frame_p95_ms: float | None = None
    frame_p99_ms: float | None = None
    frame_max_ms: float | None = None
    frames_missed: int | None = None
    longtasks: int | None = None
    longtask_total_ms: float | None = None
    longtask_max_ms: float | None = None
    # main thread and memory
    main_thread_busy_pct: float | None = None
    script_pct: float | None = None
    layout_style_pct: float | None = None
    heap_used_mb_start: float | None = None  # performance.memory.usedJSHeapSize (rounded by Chromium)
    heap_used_mb_end: float | None = None
    heap_after_gc_mb_start: float | None = None  # exact, after a forced collection (DevTools protocol)
    heap_after_gc_mb_end: float | None = None
    dom_nodes_start: int | None = None
    dom_nodes_end: int | None = None
    # what the page received and showed
    live_messages: int | None = None
    readings_received: int | None = None
    readings_received_per_s: float | None = None
    readings_received_all: int | None = None
    live_sockets_opened: int | None = None
    page_updated: bool | None = None
    updated_detail: str | None = None
    cpu_pct: dict[str, float] = field(default_factory=dict)
    page_errors: list[str] = field(default_factory=list)
    console_warnings: list[str] = field(default_factory=list)
    server_metrics: dict[str, float | None] = field(default_factory=dict)
    server_log: list[str] = field(default_factory=list)
    server_stop: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class PageWatch:
    """What Playwright sees of the page: errors, console, live-channel frames."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    http_failures: list[str] = field(default_factory=list)
    live_sockets: int = 0
    live_closed: int = 0
    messages: int = 0
    readings: int = 0
    per_device: Counter[str] = field(default_factory=Counter)

    def attach(self, page: Page) -> None:
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("crash", lambda _page: self.errors.append("the page crashed"))
        page.on("console", self._console)
        page.on("websocket", self._websocket)
        page.on("response", self._response)

    def _console(self, msg: Any) -> None:
        text = f"console.{msg.type}: {msg.text}"
        if msg.type == "error":
            self.errors.append(text)
        elif msg.type in ("warning", "warn"):
            self.warnings.append(text)

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.http_failures.append(f"HTTP {response.status} {response.url}")

    def _websocket(self, ws: WebSocket) -> None:
        if "/ws/live" not in ws.url:
            return
        self.live_sockets += 1
        ws.on("framereceived", self._frame)
        ws.on("close", lambda _ws: self._closed())

    def _closed(self) -> None:
        self.live_closed += 1

    def _frame(self, payload: str | bytes) -> None:
        if isinstance(payload, bytes) or '"telemetry"' not in payload[:40]:
            return
        msg = json.loads(payload)
        if msg.get("type") != "telemetry":
            return
        count = len(msg.get("data") or ())
        self.messages += 1
        self.readings += count
        self.per_device[msg.get("device", "?")] += count


def launch_chromium(playwright: Any) -> Browser:
    if not CHROMIUM.exists():
        raise BenchError(f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium`")
    browser: Browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
    return browser


def run_scenario(name: str, args: argparse.Namespace, number: int, total: int, machine: dict[str, Any]) -> Scenario:
    """Fresh server and browser; open the page; load; measure the window; stop everything."""
    say(
        f"scenario {number}/{total}: {SCENARIOS[name]}; {args.devices} devices, {args.rate:,} readings/s, "
        f"{args.values} values each, {args.warmup:g} s warm-up + {args.seconds:g} s measured ..."
    )
    ids = [f"bench-{i}" for i in range(args.devices)]
    path = "/" if name == "overview" else f"/#/device/{ids[0]}?range=5m"
    result = Scenario(name, path)
    with tempfile.TemporaryDirectory(prefix="pulsewire-dashbench-") as tmp:
        server = bench_server(Path(tmp))
        try:
            say("  starting server...")
            server.start()
            say(f"  registering {len(ids)} devices...")
            tokens = server.register_many(ids)
            measure(server, tokens, args, result, machine)
            result.ok = not result.failure
        except RUN_FAILURES as exc:
            result.failure = str(exc) or type(exc).__name__
        except Exception as exc:  # Playwright's errors (timeouts, a closed page) end the scenario too
            result.failure = f"{type(exc).__name__}: {exc}"
        finally:
            result.server_stop = server.stop()
            result.server_log = server.log_lines()[:LOG_LINES_KEPT]
    if result.failure:
        say("  scenario failed: " + result.failure.replace("\n", "\n    "))
    add_notes(result, args)
    return result


def measure(
    server: Server, tokens: list[str], args: argparse.Namespace, result: Scenario, machine: dict[str, Any]
) -> None:
    from playwright.sync_api import sync_playwright

    watch = PageWatch()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        machine.setdefault("chromium", browser.version)
        try:
            context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
            context.add_init_script(INSTRUMENT_JS)
            page = context.new_page()
            watch.attach(page)
            cdp = context.new_cdp_session(page)
            cdp.send("Performance.enable")
            say(f"  opening {result.path} in Chromium {browser.version}...")
            page.goto(server.base + result.path, wait_until="load")
            try:
                page.wait_for_selector('#conn[data-state="live"]', timeout=PAGE_LIVE_TIMEOUT_S * 1000)
            except Exception as exc:
                raise BenchError(
                    f"the page did not connect to the live channel within {PAGE_LIVE_TIMEOUT_S:g} s; "
                    f"page errors: {watch.errors or 'none'}"
                ) from exc
            page.wait_for_timeout(500)
            load = Load(server.port, tokens, args.rate, args.values)
            say("  connecting devices and starting the load...")
            load.start()
            summary: dict[str, Any] = {}
            try:
                page.wait_for_timeout(args.warmup * 1000)
                say(f"  measuring for {args.seconds:g} s...")
                start = window_edge(page, cdp, server, load, watch, first=True)
                page.wait_for_timeout(args.seconds * 1000)
                end = window_edge(page, cdp, server, load, watch, first=False)
            finally:
                summary = load.finish()
            page.wait_for_timeout(200)  # frames still on their way
            recorded = page.evaluate(READ_INSTRUMENT_JS, [start["t"], end["t"]])
            result.server_metrics = summarize_metrics(server.metrics())
        finally:
            browser.close()
    if (code := server.crashed()) is not None:
        raise BenchError(f"server exited with {code} during the run:\n{server.log_tail()}")
    fill(result, start, end, recorded, watch, summary)
    say(
        f"  acked {result.acked_per_s:,.0f} readings/s; page {result.fps} frames/s, frame p99 "
        f"{result.frame_p99_ms} ms, {result.longtasks} long tasks, received {result.readings_received_per_s} "
        "readings/s"
    )


def window_edge(page: Page, cdp: Any, server: Server, load: Load, watch: PageWatch, *, first: bool) -> dict[str, Any]:
    """Everything read at the start (first=True) or the end of the measured window.

    The forced garbage collection runs outside the window: before its start, after its end.
    """
    edge: dict[str, Any] = {}

    def heap() -> None:
        edge["heap_used"] = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : null")
        cdp.send("HeapProfiler.collectGarbage")
        edge["heap_after_gc"] = cdp.send("Runtime.getHeapUsage")["usedSize"]
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        edge["nodes_after_gc"] = metrics.get("Nodes")

    if first:
        heap()
    edge["t"] = page.evaluate("performance.now()")
    edge["wall"] = time.monotonic()
    load.window[0 if first else 1] = edge["wall"]
    edge["perf"] = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    edge["cpu"] = cpu_snapshot(server.pid, load.pid)
    edge["acked"], edge["sent"] = load.read(ACKED), load.read(SENT)
    edge["rejected"], edge["buffered"] = load.read(REJECTED), load.read(BUFFERED)
    edge["messages"], edge["readings"] = watch.messages, watch.readings
    edge["per_device"] = dict(watch.per_device)
    edge["live_closed"] = watch.live_closed
    edge["snapshot"] = page.evaluate(SNAPSHOT_JS)
    if not first:
        heap()
    return edge


def fill(
    r: Scenario,
    start: dict[str, Any],
    end: dict[str, Any],
    recorded: dict[str, Any] | None,
    watch: PageWatch,
    load: dict[str, Any],
) -> None:
    """The scenario's figures from the window's two edges, the page's own record of its frames and long
    tasks, what Playwright saw and the load's summary; then whether the scenario failed."""
    seconds = end["wall"] - start["wall"]
    r.window_s = round(seconds, 2)
    fill_load(r, start, end, load, seconds)
    r.page_errors = list(watch.errors)
    r.console_warnings = watch.warnings[:LOG_LINES_KEPT]
    if recorded is None:
        r.failure = r.failure or "the page's instrumentation was not found (init script did not run)"
        return
    r.notes += [f"page instrumentation: {p}" for p in recorded["problems"]]
    page_seconds = (end["t"] - start["t"]) / 1000
    fill_frames(r, recorded, page_seconds)
    fill_main_thread(r, start, end, page_seconds)
    fill_live(r, start, end, watch, seconds)
    fill_cpu(r, start["cpu"], end["cpu"], seconds)
    r.page_updated, r.updated_detail = judge_updates(r.name, start, end)
    if not r.failure:
        r.failure = scenario_failure(r, watch)


def fill_load(r: Scenario, start: dict[str, Any], end: dict[str, Any], load: dict[str, Any], seconds: float) -> None:
    """What the devices sent and got acked over the window, and what the load process reported."""
    r.acked = end["acked"] - start["acked"]
    r.acked_per_s = round(r.acked / seconds, 1)
    r.sent_per_s = round((end["sent"] - start["sent"]) / seconds, 1)
    r.rejected = end["rejected"] - start["rejected"]
    r.max_buffered = end["buffered"]
    r.ack_p50_ms, r.ack_p99_ms = load.get("ack_p50_ms"), load.get("ack_p99_ms")
    if load.get("error") or load.get("failed_devices"):
        r.failure = "the load failed: " + "; ".join(load.get("failures") or [load.get("error", "")])
    r.notes += [f"load: {p}" for p in load.get("problems", [])]


def fill_frames(r: Scenario, recorded: dict[str, Any], page_seconds: float) -> None:
    """Frames/s, frame intervals, frames missed against 60 Hz, and long tasks, from the page's own record."""
    frames = recorded["frames"]
    intervals = sorted(b - a for a, b in zip(frames, frames[1:], strict=False))
    r.frames = len(frames)
    r.fps = round(len(frames) / page_seconds, 1) if page_seconds > 0 else None
    if intervals:
        r.frame_p50_ms = round(_percentile(intervals, 50), 1)
        r.frame_p95_ms = round(_percentile(intervals, 95), 1)
        r.frame_p99_ms = round(_percentile(intervals, 99), 1)
        r.frame_max_ms = round(intervals[-1], 1)
        r.frames_missed = sum(max(0, round(i / FRAME_MS_60HZ) - 1) for i in intervals)
    tasks = recorded["longtasks"]
    r.longtasks = len(tasks)
    r.longtask_total_ms = round(sum(d for _, d in tasks), 1)
    r.longtask_max_ms = round(max((d for _, d in tasks), default=0.0), 1)


def fill_main_thread(r: Scenario, start: dict[str, Any], end: dict[str, Any], page_seconds: float) -> None:
    """Main-thread busy shares over the window (DevTools' Performance metrics), DOM nodes and JS heap at its edges."""
    p0, p1 = start["perf"], end["perf"]

    def share(*names: str) -> float | None:
        if not all(n in p0 and n in p1 for n in names):
            return None
        return round(100 * sum(p1[n] - p0[n] for n in names) / page_seconds, 1)

    r.main_thread_busy_pct = share("TaskDuration")
    r.script_pct = share("ScriptDuration")
    r.layout_style_pct = share("LayoutDuration", "RecalcStyleDuration")
    r.dom_nodes_start, r.dom_nodes_end = _int(start["nodes_after_gc"]), _int(end["nodes_after_gc"])
    r.heap_used_mb_start, r.heap_used_mb_end = _mb(start["heap_used"]), _mb(end["heap_used"])
    r.heap_after_gc_mb_start, r.heap_after_gc_mb_end = _mb(start["heap_after_gc"]), _mb(end["heap_after_gc"])


def fill_live(r: Scenario, start: dict[str, Any], end: dict[str, Any], watch: PageWatch, seconds: float) -> None:
    """What the page received on the live channel, and whether its socket or requests failed."""
    r.live_messages = end["messages"] - start["messages"]
    r.readings_received = end["readings"] - start["readings"]
    r.readings_received_per_s = round(r.readings_received / seconds, 1)
    r.readings_received_all = watch.readings
    r.live_sockets_opened = watch.live_sockets
    if end["live_closed"]:
        r.notes.append(f"the page's live socket closed {end['live_closed']} time(s) before the window ended")
    r.notes += [f"page request failed: {f[:300]}" for f in watch.http_failures[:5]]


def fill_cpu(r: Scenario, c0: dict[str, float], c1: dict[str, float], seconds: float) -> None:
    """CPU by role over the window in % of one core; "others": the machine's busy time no role accounts for."""
    r.cpu_pct = {k: round(100 * (c1.get(k, 0.0) - c0.get(k, 0.0)) / seconds, 1) for k in sorted(set(c0) | set(c1))}
    ours = sum(v for k, v in r.cpu_pct.items() if k != "machine")
    r.cpu_pct["others"] = round(max(0.0, r.cpu_pct.get("machine", 0.0) - ours), 1)


def scenario_failure(r: Scenario, watch: PageWatch) -> str | None:
    """Why the figures would mean nothing, if they would: nothing acked, a page error, nothing received or shown."""
    if r.acked == 0:
        return "no readings were acked during the window: the load could not be driven"
    if r.page_errors:
        return f"the page reported {len(r.page_errors)} error(s), first: {r.page_errors[0][:300]}"
    if not watch.readings:
        return "the page received no telemetry on the live channel"
    if not r.page_updated:
        return f"the page did not change during the window: {r.updated_detail}"
    return None


def judge_updates(name: str, start: dict[str, Any], end: dict[str, Any]) -> tuple[bool, str]:
    """Whether what the page shows changed over the window, and a line saying how."""
    before, after = start["snapshot"], end["snapshot"]
    if name == "overview":
        cards = after["cards"]
        changed = sum(1 for dev, text in cards.items() if text and before["cards"].get(dev) != text)
        detail = f"{changed} of {len(cards)} device cards showed new values"
        if after["sparks"]:
            detail += f"; a sparkline's label at the end: {after['sparks'][0]!r}"
        return changed > 0, detail
    charts = after["charts"]
    grew = [m for m, c in charts.items() if (c["points"] or 0) > (before["charts"].get(m, {}).get("points") or 0)]
    points = ", ".join(f"{m} {before['charts'].get(m, {}).get('points')} -> {c['points']}" for m, c in charts.items())
    device = "bench-0"
    detail = (
        f"{len(grew)} of {len(charts)} charts gained points (data-points {points or 'none'}); by the end the page "
        f"had received {end['per_device'].get(device, 0):,} readings of {device} in all"
    )
    return bool(grew), detail


def add_notes(r: Scenario, args: argparse.Namespace) -> None:
    notes = r.notes
    if r.failure:
        notes.insert(0, f"failed: {r.failure.splitlines()[0]}")
    if r.acked_per_s is not None and r.acked_per_s < KEEP_UP_SHARE * args.rate:
        notes.append(f"the load reached {r.acked_per_s:,.0f} acked readings/s, under the {args.rate:,} asked")
    if r.rejected:
        notes.append(f"the server refused {r.rejected:,} batches during the window (error answers)")
    if r.max_buffered:
        notes.append(f"a device had up to {r.max_buffered} readings waiting for room in its ack window")
    if r.readings_received is not None and r.acked and r.readings_received < 0.9 * r.acked:
        notes.append(f"the page received {r.readings_received:,} readings during the window, {r.acked:,} were acked")
    if r.live_sockets_opened and r.live_sockets_opened > 1:
        notes.append(
            f"the page opened the live channel {r.live_sockets_opened} times: it was dropped or lost its "
            "connection and reconnected"
        )
    others = r.cpu_pct.get("others")
    if others is not None and others >= 20:
        notes.append(f"other processes on the machine used {others:.0f}% of a core during the window")
    dropped = r.server_metrics.get("live_clients_dropped")
    if dropped:
        notes.append(f"the server dropped {dropped:,.0f} live client(s) for falling behind (close 1013)")
    for key in ("rejects", "storage_errors", "frame_closes"):
        if r.server_metrics.get(key):
            notes.append(f"server metric {key} = {r.server_metrics[key]:,.0f}")
    notes += [f"page error: {e[:300]}" for e in r.page_errors[:10]]
    notes += [f"page warning: {w[:300]}" for w in r.console_warnings[:5]]
    if r.server_log:
        notes.append(f"server logged {len(r.server_log)} warning/error line(s), first: {r.server_log[0][:200]}")


# Report


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _mb(value: float | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _fmt(value: float | int | None, spec: str = ",") -> str:
    return "-" if value is None else format(value, spec)


def _pair(a: float | int | None, b: float | int | None, spec: str = ",", unit: str = "") -> str:
    return f"{_fmt(a, spec)} -> {_fmt(b, spec)}{unit}"


def scenario_table(r: Scenario, args: argparse.Namespace) -> str:
    cpu = r.cpu_pct
    rows: list[tuple[str, str]] = [
        ("page", r.path),
        ("result", "ok" if r.ok else f"FAILED: {(r.failure or '').splitlines()[0][:200]}"),
        ("measured window", f"{_fmt(r.window_s, '.1f')} s"),
        ("load: acked readings/s (asked)", f"{_fmt(r.acked_per_s, ',.0f')} ({args.rate:,})"),
        ("load: ack round trip p50 / p99", f"{_fmt(r.ack_p50_ms)} / {_fmt(r.ack_p99_ms)} ms"),
        ("page: live messages received", _fmt(r.live_messages)),
        ("page: readings received (per s)", f"{_fmt(r.readings_received)} ({_fmt(r.readings_received_per_s, ',.0f')})"),
        ("page: live sockets opened", _fmt(r.live_sockets_opened)),
        ("page: content changed", "yes" if r.page_updated else "no" if r.page_updated is False else "-"),
        ("frames/s (headless cap ~60)", _fmt(r.fps, ".1f")),
        (
            "frame interval p50 / p95 / p99 / max",
            f"{_fmt(r.frame_p50_ms, '.1f')} / {_fmt(r.frame_p95_ms, '.1f')} / {_fmt(r.frame_p99_ms, '.1f')} / "
            f"{_fmt(r.frame_max_ms, '.1f')} ms",
        ),
        ("frames missed (vs 60 Hz)", f"{_fmt(r.frames_missed)} of {_fmt(r.frames)} drawn"),
        (
            "long tasks: count / total / longest",
            f"{_fmt(r.longtasks)} / {_fmt(r.longtask_total_ms, ',.0f')} / {_fmt(r.longtask_max_ms, '.0f')} ms",
        ),
        (
            "main thread busy (script, layout+style)",
            f"{_fmt(r.main_thread_busy_pct, '.1f')}% ({_fmt(r.script_pct, '.1f')}%, {_fmt(r.layout_style_pct, '.1f')}%)",
        ),
        ("JS heap, performance.memory (rounded)", _pair(r.heap_used_mb_start, r.heap_used_mb_end, ".1f", " MB")),
        ("JS heap after forced GC (exact)", _pair(r.heap_after_gc_mb_start, r.heap_after_gc_mb_end, ".1f", " MB")),
        ("DOM nodes after forced GC", _pair(r.dom_nodes_start, r.dom_nodes_end)),
        (
            "CPU % of one core: server / load",
            f"{_fmt(cpu.get('server'), '.0f')} / {_fmt(cpu.get('load'), '.0f')}",
        ),
        (
            "CPU %: Chromium renderer / rest of Chromium",
            f"{_fmt(cpu.get('chromium_renderer'), '.0f')} / {_fmt(cpu.get('chromium_other'), '.0f')}",
        ),
        (
            "CPU %: bench + Playwright / other processes",
            f"{_fmt(cpu.get('bench'), '.0f')} / {_fmt(cpu.get('others'), '.0f')}",
        ),
        (f"CPU %: whole machine (of {100 * (os.cpu_count() or 1)})", _fmt(cpu.get("machine"), ".0f")),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"Scenario: {r.name} ({SCENARIOS[r.name]})", "-" * (width + 40)]
    lines += [f"{k.ljust(width)}  {v}" for k, v in rows]
    if r.updated_detail:
        lines.append(f"  what changed: {r.updated_detail}")
    lines += [f"  note: {n}" for n in r.notes]
    return "\n".join(lines)


def format_report(results: list[Scenario], args: argparse.Namespace, machine: dict[str, Any]) -> str:
    head = [
        "Pulsewire dashboard under load",
        f"Run: {args.devices} devices, {args.rate:,} readings/s asked ({args.rate / args.devices:g} per device, "
        f"batches every {TICK_S * 1000:.0f} ms, up to {WINDOW} un-acked), {args.values} values per reading; "
        f"{args.warmup:g} s warm-up, {args.seconds:g} s measured per scenario; fresh server (SQLite, default "
        "settings) and browser per scenario.",
        f"Machine: {machine['cpus']} CPUs ({machine['platform']}); Chromium {machine.get('chromium', '?')} headless, "
        f"viewport {VIEWPORT['width']}x{VIEWPORT['height']}; server, load, browser and this script share the CPUs.",
        "Headless Chromium runs requestAnimationFrame at ~60 Hz (16.7 ms): ~60 frames/s with p99 near 17 ms means "
        "the page kept up with the display; 'frames missed' counts 16.7 ms slots skipped between frames.",
        "",
    ]
    return "\n".join(head) + "\n\n".join(scenario_table(r, args) for r in results)


def report_json(results: list[Scenario], args: argparse.Namespace, machine: dict[str, Any]) -> dict[str, Any]:
    return {
        "benchmark": "pulsewire dashboard",
        "machine": machine,
        "config": {
            "devices": args.devices,
            "rate": args.rate,
            "values": args.values,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "tick_ms": TICK_S * 1000,
            "window": WINDOW,
            "viewport": VIEWPORT,
        },
        "scenarios": [asdict(r) for r in results],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        give_up(
            "the `playwright` Python package is needed: .venv/bin/pip install playwright (the browser is "
            f"Debian's Chromium at {CHROMIUM}; no `playwright install`)"
        )
    try:
        import psutil  # noqa: F401
    except ImportError:
        give_up("psutil is needed to measure CPU use: pip install psutil")
    if not CHROMIUM.exists():
        give_up(f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium`")
    machine: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    results = [run_scenario(name, args, i, len(args.scenario), machine) for i, name in enumerate(args.scenario, 1)]
    report = format_report(results, args, machine)
    if args.json:
        print(report, file=sys.stderr)
        print(json.dumps(report_json(results, args, machine)))
    else:
        print(report)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
