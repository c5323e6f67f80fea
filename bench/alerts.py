#!/usr/bin/env python3
"""Alerts benchmark: what 1,000 rules cost ingest, and how soon a crossing reaches a webhook.

The set-up (issue 14's figures)
- A real `pulsewire serve` (SQLite, default settings: no limit raised), 100 devices from
  127.0.0.1, and 1,000 rules over them: 10 per device, of which a few are `"*"` rules (every
  device), on several metrics (`temperature` and `sent`, which the devices send, and `humidity`,
  `battery`, `rssi`, which they do not), some with `for_s`, some bands (`outside`, `inside`), one
  `no_data` rule. One holds its condition all the time without reaching its `for_s` (a day),
  so every reading moves a pending state; none of the others matches the load's readings. Every
  rule notifies one webhook channel, pointing at a real HTTP receiver in a process of its own,
  which notes the arrival of each POST and checks its `X-Pulsewire-Signature`.
- Load: the load generator (bench/peers/load.mjs) drives most devices; a few "crossing devices"
  are driven from this process, so that their readings can cross a threshold on cue.

What is measured
1. Latency (paced runs, `--rate` readings/s in all, 5,000 by default, batch 1): the crossing
   devices send at the same per-device rate as the others, and every `--cross-every`-th reading
   is 150 (over the `temperature > 100` rule every device has), the next one back to normal. Each
   crossing is a new alert: a `firing` webhook, then a `resolved` one. The figure is the time from
   the client sending the crossing reading to the receiver getting its `firing` POST (and likewise
   the clearing reading to `resolved`), p50/p99 per run. On loopback the client's send is the
   server's arrival to within a fraction of a millisecond (both sides on one machine, one clock:
   CLOCK_MONOTONIC is system-wide on Linux).
2. Cost on ingest: the same runs without any rule (no channel either), interleaved with the
   runs with rules (with, without, with, without, ...), each on a fresh server and database.
   Saturation runs (`--batch`, as fast as acks allow, all devices from the load generator) give
   acked readings/s with and without rules; the paced runs give the server's CPU per acked
   reading at the fixed rate. Medians and ranges over `--rounds` rounds; the ratio of medians.

Targets (issue, 2-core machine): crossing-to-webhook p99 < 50 ms at 5,000 readings/s; acked
readings/s with 1,000 rules >= 90% of without.

This is a benchmark, not a test: run it by hand (bench/alerts.py --help). On a shared 2-core
machine server, load generator, crossing devices and receiver compete for the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import multiprocessing as mp
import os
import platform
import random
import secrets
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from harness.cli import LOG_LINES_KEPT, BenchError, give_up, positive_float, positive_int, say
from harness.devices import open_device
from harness.loadgen import DEFAULT_PEERS_DIR, TARGET_RATE, find_node, node_version, prepare_loadgen, run_loadgen
from harness.sampler import ServerSampler
from harness.server import RUN_FAILURES, Server, bench_server, summarize_metrics

TARGET_P99_MS = 50.0
TARGET_SHARE = 0.90  # acked readings/s with rules, of without
CROSS_VALUE = 150.0  # over the `temperature > 100` rule; the load's temperatures are 20..25
CROSS_RULE_VALUE = 100.0
FW = "bench-alerts"
DRAIN_S = 3.0  # after the load, for acks and the last webhooks
WEBHOOK_WAIT_S = 10.0

# Rules on one device, in order; `"*"` rules take the place of the last ones on the first devices
# so that there are devices x rules-per-device rules in all. (name, metric, condition, for_s, severity)
DEVICE_RULES: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("crossed", "temperature", {"op": ">", "value": CROSS_RULE_VALUE}, 0, "critical"),
    ("warm a day", "temperature", {"op": ">", "value": 10}, 86_400, "info"),  # pending throughout
    ("freezing", "temperature", {"op": "<", "value": 0}, 300, "warning"),
    ("out of band", "temperature", {"op": "outside", "low": -50, "high": 180}, 0, "critical"),
    ("in a band", "temperature", {"op": "inside", "low": 90, "high": 95}, 60, "warning"),
    ("clock behind", "sent", {"op": "<", "value": 0}, 0, "warning"),
    ("clock ahead", "sent", {"op": ">=", "value": 1e15}, 30, "info"),
    ("humid", "humidity", {"op": ">", "value": 80}, 600, "warning"),
    ("battery low", "battery", {"op": "<=", "value": 3.3}, 60, "critical"),
    ("weak signal", "rssi", {"op": "outside", "low": -90, "high": -30}, 120, "info"),
]
STAR_RULES: list[dict[str, Any]] = [
    {"name": "any too hot", "kind": "threshold", "metric": "temperature", "op": ">", "value": 200, "for_s": 0},
    {"name": "any too cold", "kind": "threshold", "metric": "temperature", "op": "<", "value": -40, "for_s": 60},
    {"name": "any clock broken", "kind": "threshold", "metric": "sent", "op": "<=", "value": 0, "for_s": 0},
    {"name": "any silent", "kind": "no_data", "metric": None, "for_s": 3600},
]


# Command line


# long: one add_argument per option, a flat list to scan
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/alerts.py",
        description="Benchmark alerts on a real Pulsewire server: the time from a reading that crosses a "
        "threshold to its webhook, and acked readings/s (and CPU per reading) with 1,000 rules against "
        "without any, in interleaved runs. Needs Node.js >= 18 and npm for the load generator.",
        epilog="Example: .venv/bin/python bench/alerts.py --rounds 3. Progress goes to stderr; the results to "
        "stdout (to stderr with --json, so stdout is pure JSON). Exit status: 0 if every run worked, 1 if one "
        "failed, 2 if the set-up is impossible.",
    )
    parser.add_argument("--devices", type=positive_int, default=100, help="devices in all (default: 100)")
    parser.add_argument(
        "--rules-per-device", type=positive_int, default=10, help="rules per device, '*' rules included (default: 10)"
    )
    parser.add_argument(
        "--star-rules",
        type=int,
        choices=range(len(STAR_RULES) + 1),
        default=len(STAR_RULES),
        metavar=f"0..{len(STAR_RULES)}",
        help=f"rules on every device ('*') among them (default: {len(STAR_RULES)})",
    )
    parser.add_argument(
        "--crossing-devices", type=positive_int, default=10, help="devices whose readings cross (default: 10)"
    )
    parser.add_argument(
        "--cross-every",
        type=positive_int,
        default=25,
        help="a crossing device's every N-th reading crosses, the next one clears (default: 25: twice a "
        "second at 50 readings/s a device)",
    )
    parser.add_argument(
        "--rate",
        type=positive_int,
        default=TARGET_RATE,
        help=f"readings/s in all in the paced runs, batch 1 (default: {TARGET_RATE})",
    )
    parser.add_argument("--seconds", type=positive_float, default=20.0, help="seconds per paced run (default: 20)")
    parser.add_argument(
        "--batch",
        type=positive_int,
        nargs="*",
        default=[1, 20],
        metavar="B",
        help="readings per batch of the saturation runs, one pair of runs per value; none: no saturation runs "
        "(default: 1 20)",
    )
    parser.add_argument(
        "--saturation-seconds", type=positive_float, default=10.0, help="seconds per saturation run (default: 10)"
    )
    parser.add_argument("--rounds", type=positive_int, default=3, help="rounds of every run pair (default: 3)")
    parser.add_argument(
        "--peers-dir",
        type=Path,
        default=DEFAULT_PEERS_DIR,
        help=f"folder holding load.mjs and package.json (default: {DEFAULT_PEERS_DIR}; env PULSEWIRE_BENCH_PEERS)",
    )
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.crossing_devices >= args.devices:
        parser.error("--crossing-devices must leave at least one device to the load generator")
    if args.star_rules >= args.rules_per_device:
        parser.error("--star-rules must be fewer than --rules-per-device")
    if args.rules_per_device > len(DEVICE_RULES):
        parser.error(f"at most {len(DEVICE_RULES)} rules per device")
    if args.cross_every < 2:
        parser.error("--cross-every must be at least 2 (a crossing, then a clearing reading)")
    return args


# Figures


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def spread(values: list[float], digits: int = 1) -> dict[str, float | None]:
    """Median and range of per-round figures."""
    if not values:
        return {"median": None, "min": None, "max": None}
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


# The rules


def rule_bodies(device_ids: list[str], per_device: int, stars: int, channel: str) -> list[dict[str, Any]]:
    """devices x per_device rules: `stars` on every device, the rest on one device each."""
    bodies: list[dict[str, Any]] = []
    for i, device_id in enumerate(device_ids):
        kept = per_device - 1 if i < stars else per_device
        for name, metric, condition, for_s, severity in DEVICE_RULES[:kept]:
            bodies.append(
                {
                    "name": f"{name} {device_id}",
                    "kind": "threshold",
                    "device": device_id,
                    "metric": metric,
                    **condition,
                    "for_s": for_s,
                    "severity": severity,
                    "channels": [channel],
                }
            )
    for star in STAR_RULES[:stars]:
        bodies.append({**star, "device": "*", "severity": "warning", "channels": [channel]})
    return bodies


def add_rules(server: Server, receiver_url: str, secret: str, bodies_for: Any) -> int:
    """One webhook channel and the rules; the number of rules stored."""
    with httpx.Client(base_url=server.base, headers=server.admin(), timeout=30) as client:
        made = client.post(
            "/api/channels", json={"name": "bench receiver", "type": "webhook", "url": receiver_url, "secret": secret}
        )
        if made.status_code != 201:
            raise BenchError(f"adding the channel: HTTP {made.status_code} {made.text[:300]}")
        bodies = bodies_for(made.json()["id"])
        for body in bodies:
            resp = client.post("/api/rules", json=body)
            if resp.status_code != 201:
                raise BenchError(f"adding rule {body['name']!r}: HTTP {resp.status_code} {resp.text[:300]}")
        return len(client.get("/api/rules").json())


# The webhook receiver (a process of its own)


def verified(secret: str, body: bytes, header: str | None) -> bool:
    """As docs/alerts.md tells a receiver to check a webhook."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected, header)


def receiver_process(secret: str, ready: Any) -> None:
    """Serve POSTs (noted with their arrival on CLOCK_MONOTONIC) and GET /records (taken and cleared)."""
    records: list[dict[str, Any]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the server's client uses it

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            arrived = time.monotonic()
            ok = verified(secret, body, self.headers.get("X-Pulsewire-Signature"))
            try:
                payload = json.loads(body)
                alert = payload["alert"]
                record = {
                    "arrived": arrived,
                    "verified": ok,
                    "event": payload["event"],
                    "key": payload["idempotency_key"],
                    "header_key": self.headers.get("Idempotency-Key"),
                    "device": alert["device"],
                    "ts": alert["ts"],
                    "resolved_at": alert["resolved_at"],
                    "rule_name": alert["rule_name"],
                }
            except (ValueError, KeyError, TypeError) as exc:
                record = {"arrived": arrived, "verified": ok, "event": None, "error": repr(exc)}
            with lock:
                records.append(record)
            self._answer(200, b"")

        def do_GET(self) -> None:  # noqa: N802
            with lock:
                taken = list(records)
                records.clear()
            self._answer(200, json.dumps(taken).encode())

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    ready.put(httpd.server_address[1])
    httpd.serve_forever()


class Receiver:
    """The receiver's process: started once, its records taken after each run."""

    def __init__(self) -> None:
        self.secret = "bench-" + secrets.token_hex(24)
        ctx = mp.get_context("spawn")
        ready = ctx.Queue()
        self._proc = ctx.Process(target=receiver_process, args=(self.secret, ready), daemon=True)
        self._proc.start()
        try:
            self.port = int(ready.get(timeout=30))
        except Exception as exc:
            self._proc.kill()
            raise BenchError("the webhook receiver did not start") from exc
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def take(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = httpx.get(f"http://127.0.0.1:{self.port}/records", timeout=10).json()
        return records

    def stop(self) -> None:
        self._proc.kill()
        self._proc.join(5)


# The crossing devices (this process)


@dataclass
class Crossings:
    sent: int = 0
    acked: int = 0
    errors: int = 0
    crossings: dict[tuple[str, int], float] = field(default_factory=dict)  # (device, ts) -> send time
    clearings: dict[tuple[str, int], float] = field(default_factory=dict)


# long: one paced loop of sends and the bookkeeping that times them; apart, the timing reads worse
async def drive_crossing_devices(
    url: str, ids: list[str], tokens: list[str], rate_per_device: float, seconds: float, cross_every: int
) -> Crossings:
    """Batch-1 readings at `rate_per_device` from each device; every `cross_every`-th crosses, the next clears."""
    out = Crossings()
    sockets = [await open_device(url, token, FW, ping_interval=None) for token in tokens]
    period = 1 / rate_per_device
    start = time.monotonic()
    end = start + seconds

    async def device(number: int, device_id: str, ws: Any) -> None:
        pending = 0

        async def read() -> None:
            nonlocal pending
            async for raw in ws:
                kind = json.loads(raw).get("type")
                if kind == "ack":
                    out.acked += 1
                elif kind == "error":
                    out.errors += 1
                pending -= 1

        reader = asyncio.create_task(read())
        due = start + period * number / len(ids)  # devices spread over a period, as load.mjs paces them
        last_ts, n, crossed = 0, 0, False
        while True:
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if time.monotonic() >= end:
                break
            n += 1
            ts = max(int(time.time() * 1000), last_ts + 1)
            last_ts = ts
            crossing = (n + number * 7) % cross_every == 0  # devices cross at different moments
            temperature = CROSS_VALUE if crossing else 20 + random.random() * 5
            message = json.dumps(
                {
                    "type": "telemetry",
                    "seq": n,
                    "data": [{"ts": ts, "values": {"temperature": temperature, "sent": time.time() * 1000}}],
                }
            )
            sent_at = time.monotonic()
            await ws.send(message)
            pending += 1
            out.sent += 1
            if crossing:
                out.crossings[(device_id, ts)] = sent_at
            elif crossed:
                out.clearings[(device_id, ts)] = sent_at
            crossed = crossing
            due += period
        drain = time.monotonic() + DRAIN_S
        while pending > 0 and time.monotonic() < drain:
            await asyncio.sleep(0.02)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await ws.close()

    await asyncio.gather(*(device(i, d, ws) for i, (d, ws) in enumerate(zip(ids, sockets, strict=True))))
    return out


def latencies(records: list[dict[str, Any]], crossings: Crossings) -> dict[str, Any]:
    """Match each webhook to the reading behind it: firing by the alert's ts, resolved by its resolved_at."""
    firing: list[float] = []
    resolved: list[float] = []
    keys: set[str] = set()
    duplicates = unmatched = unverified = 0
    for r in records:
        if not r.get("verified"):
            unverified += 1
        key = r.get("key")
        if key in keys:
            duplicates += 1  # at-least-once: a copy a receiver drops by its key
            continue
        keys.add(key or "")
        if r.get("event") == "firing":
            sent, into = crossings.crossings.get((r["device"], r["ts"])), firing
        elif r.get("event") == "resolved":
            sent, into = crossings.clearings.get((r["device"], r["resolved_at"])), resolved
        else:
            sent = None
        if sent is None:
            unmatched += 1
        else:
            into.append(r["arrived"] - sent)
    return {
        "webhooks": len(records),
        "verified": len(records) - unverified,
        "duplicates": duplicates,
        "unmatched": unmatched,
        "keys_agree": all(r.get("key") == r.get("header_key") for r in records if r.get("event")),
        "firing": firing,
        "resolved": resolved,
    }


# Runs


@dataclass
class Run:
    kind: str  # "paced" or "saturation"
    rules: bool
    round: int
    batch: int
    ok: bool = False
    failure: str | None = None
    rule_count: int = 0
    sent: int | None = None
    acked: int | None = None
    acked_per_s: float | None = None
    errors: int | None = None
    connected: int | None = None
    server_cpu_pct: float | None = None
    server_loop_cpu_pct: float | None = None
    cpu_us_per_reading: float | None = None
    live_p99_ms: float | None = None
    crossings: int | None = None
    clearings: int | None = None
    webhooks: int | None = None
    webhooks_verified: int | None = None
    webhook_duplicates: int | None = None
    webhooks_unmatched: int | None = None
    keys_agree: bool | None = None
    firing_ms: list[float] = field(default_factory=list)
    resolved_ms: list[float] = field(default_factory=list)
    firing_p50_ms: float | None = None
    firing_p99_ms: float | None = None
    firing_max_ms: float | None = None
    resolved_p50_ms: float | None = None
    resolved_p99_ms: float | None = None
    server_metrics: dict[str, float | None] = field(default_factory=dict)
    alert_events: float | None = None
    notifications_sent: float | None = None
    server_log: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        what = "with rules" if self.rules else "no rules"
        return f"{self.kind} b{self.batch} {what}"


@dataclass(frozen=True)
class Plan:
    args: argparse.Namespace
    node: str
    loadgen: Path
    receiver: Receiver

    @property
    def device_ids(self) -> list[str]:
        return [f"bench-{i}" for i in range(self.args.devices)]


def run_one(plan: Plan, run: Run) -> Run:
    say(f"round {run.round}: {run.label} ...")
    with tempfile.TemporaryDirectory(prefix="pulsewire-bench-alerts-") as tmp:
        server = bench_server(Path(tmp))
        try:
            server.start()
            ids = plan.device_ids
            tokens = server.register_many(ids)
            if run.rules:
                a = plan.args
                run.rule_count = add_rules(
                    server,
                    plan.receiver.url,
                    plan.receiver.secret,
                    lambda channel: rule_bodies(ids, a.rules_per_device, a.star_rules, channel),
                )
            plan.receiver.take()  # nothing of an earlier run
            if run.kind == "paced":
                paced(plan, server, run, ids, tokens, Path(tmp))
            else:
                saturated(plan, server, run, tokens, Path(tmp))
            if (code := server.crashed()) is not None:
                raise BenchError(f"server exited with {code} during the run:\n{server.log_tail()}")
            metrics = server.metrics()
            run.server_metrics = summarize_metrics(metrics)
            run.alert_events = metrics.get("pulsewire_alert_events_total", 0.0)
            run.notifications_sent = metrics.get("pulsewire_notifications_sent_total", 0.0)
            run.ok = True
        except RUN_FAILURES as exc:
            run.failure = str(exc) or type(exc).__name__
            say("  run failed: " + run.failure.replace("\n", "\n    "))
        finally:
            server.stop()
            run.server_log = server.log_lines()[:LOG_LINES_KEPT]
    return run


# long: a run's steps in the order they happen: start the load, drive the crossings, collect, check
def paced(plan: Plan, server: Server, run: Run, ids: list[str], tokens: list[str], tmp: Path) -> None:
    a = plan.args
    loaded = a.devices - a.crossing_devices
    per_device = a.rate / a.devices
    tokens_file = tmp / "tokens.txt"
    tokens_file.write_text("\n".join(tokens[:loaded]) + "\n")

    async def both() -> tuple[dict[str, Any], Crossings]:
        load = asyncio.create_task(
            asyncio.to_thread(
                run_loadgen,
                plan.node,
                plan.loadgen,
                f"ws://127.0.0.1:{server.port}",
                loaded,
                1,
                a.seconds,
                tokens_file=tokens_file,
                rate=round(per_device * loaded),
            )
        )
        crossed = await drive_crossing_devices(
            server.ws_base + "/ws/device", ids[loaded:], tokens[loaded:], per_device, a.seconds, a.cross_every
        )
        return await load, crossed

    with ServerSampler(server.pid) as sampler:
        load, crossed = asyncio.run(both())
    fill_load(run, load, extra_sent=crossed.sent, extra_acked=crossed.acked, extra_errors=crossed.errors)
    run.acked_per_s = round(run.acked / a.seconds) if run.acked is not None else None
    fill_cpu(run, sampler, a.seconds)
    run.crossings, run.clearings = len(crossed.crossings), len(crossed.clearings)
    records: list[dict[str, Any]] = []
    if run.rules:
        expected = run.crossings + run.clearings
        deadline = time.monotonic() + WEBHOOK_WAIT_S
        while True:
            records += plan.receiver.take()
            if len(records) >= expected or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
    else:
        records = plan.receiver.take()
    found = latencies(records, crossed)
    run.webhooks, run.webhooks_verified = found["webhooks"], found["verified"]
    run.webhook_duplicates, run.webhooks_unmatched, run.keys_agree = (
        found["duplicates"],
        found["unmatched"],
        found["keys_agree"],
    )
    run.firing_ms = [round(x * 1000, 2) for x in found["firing"]]
    run.resolved_ms = [round(x * 1000, 2) for x in found["resolved"]]
    run.firing_p50_ms, run.firing_p99_ms = _ms(percentile(found["firing"], 50)), _ms(percentile(found["firing"], 99))
    run.firing_max_ms = _ms(max(found["firing"])) if found["firing"] else None
    run.resolved_p50_ms = _ms(percentile(found["resolved"], 50))
    run.resolved_p99_ms = _ms(percentile(found["resolved"], 99))
    say(
        f"  acked {run.acked_per_s:,} readings/s, CPU {run.cpu_us_per_reading} µs/reading; "
        + (
            f"{run.crossings} crossings, {run.webhooks} webhooks ({run.webhooks_verified} verified), "
            f"firing p50/p99 {run.firing_p50_ms}/{run.firing_p99_ms} ms"
            if run.rules
            else f"{run.webhooks} webhooks"
        )
    )


def saturated(plan: Plan, server: Server, run: Run, tokens: list[str], tmp: Path) -> None:
    a = plan.args
    tokens_file = tmp / "tokens.txt"
    tokens_file.write_text("\n".join(tokens) + "\n")
    with ServerSampler(server.pid) as sampler:
        load = run_loadgen(
            plan.node,
            plan.loadgen,
            f"ws://127.0.0.1:{server.port}",
            a.devices,
            run.batch,
            a.saturation_seconds,
            tokens_file=tokens_file,
        )
    fill_load(run, load)
    run.acked_per_s = load.get("acked_per_s")
    fill_cpu(run, sampler, a.saturation_seconds)
    say(f"  acked {run.acked_per_s:,} readings/s, CPU {run.cpu_us_per_reading} µs/reading")


def fill_load(run: Run, load: dict[str, Any], extra_sent: int = 0, extra_acked: int = 0, extra_errors: int = 0) -> None:
    run.sent = (load.get("sent") or 0) + extra_sent
    run.acked = (load.get("acked") or 0) + extra_acked
    run.errors = (load.get("errors") or 0) + extra_errors
    run.connected = load.get("connected")
    run.live_p99_ms = load.get("live_p99_ms")


def fill_cpu(run: Run, sampler: ServerSampler, seconds: float) -> None:
    if sampler.cpu_seconds is None:
        return
    run.server_cpu_pct = round(100 * sampler.cpu_seconds / seconds, 1)
    if sampler.loop_cpu_seconds is not None:
        run.server_loop_cpu_pct = round(100 * sampler.loop_cpu_seconds / seconds, 1)
    if run.acked:
        run.cpu_us_per_reading = round(1e6 * sampler.cpu_seconds / run.acked, 1)


def plan_runs(args: argparse.Namespace) -> list[Run]:
    """Round by round: each kind of run with rules, then without (A B A B ...)."""
    runs = []
    for number in range(1, args.rounds + 1):
        for kind, batch in [("paced", 1), *(("saturation", b) for b in dict.fromkeys(args.batch))]:
            runs += [Run(kind, True, number, batch), Run(kind, False, number, batch)]
    return runs


# Report


def summarize(runs: list[Run]) -> dict[str, Any]:
    ok = [r for r in runs if r.ok]
    out: dict[str, Any] = {}
    paced_with = [r for r in ok if r.kind == "paced" and r.rules]
    paced_without = [r for r in ok if r.kind == "paced" and not r.rules]
    pooled_firing = [x for r in paced_with for x in r.firing_ms]
    pooled_resolved = [x for r in paced_with for x in r.resolved_ms]
    out["latency"] = {
        "firing_p50_ms": spread([r.firing_p50_ms for r in paced_with if r.firing_p50_ms is not None]),
        "firing_p99_ms": spread([r.firing_p99_ms for r in paced_with if r.firing_p99_ms is not None]),
        "resolved_p50_ms": spread([r.resolved_p50_ms for r in paced_with if r.resolved_p50_ms is not None]),
        "resolved_p99_ms": spread([r.resolved_p99_ms for r in paced_with if r.resolved_p99_ms is not None]),
        "pooled": {
            "crossings": len(pooled_firing),
            "firing_p50_ms": percentile(pooled_firing, 50),
            "firing_p99_ms": percentile(pooled_firing, 99),
            "firing_max_ms": max(pooled_firing) if pooled_firing else None,
            "resolved_p50_ms": percentile(pooled_resolved, 50),
            "resolved_p99_ms": percentile(pooled_resolved, 99),
        },
        "webhooks": sum(r.webhooks or 0 for r in paced_with),
        "verified": sum(r.webhooks_verified or 0 for r in paced_with),
        "crossings_sent": sum(r.crossings or 0 for r in paced_with),
        "clearings_sent": sum(r.clearings or 0 for r in paced_with),
        "webhooks_without_rules": sum(r.webhooks or 0 for r in paced_without),
    }
    cost: dict[str, Any] = {}
    kinds = dict.fromkeys((r.kind, r.batch) for r in runs)
    for kind, batch in kinds:
        with_ = [r for r in ok if (r.kind, r.batch) == (kind, batch) and r.rules]
        without = [r for r in ok if (r.kind, r.batch) == (kind, batch) and not r.rules]
        pairs = [
            (w, o)
            for w in with_
            for o in without
            if w.round == o.round and w.acked_per_s and o.acked_per_s and w.cpu_us_per_reading and o.cpu_us_per_reading
        ]
        entry = {
            "acked_per_s_with": spread([float(r.acked_per_s) for r in with_ if r.acked_per_s is not None], 0),
            "acked_per_s_without": spread([float(r.acked_per_s) for r in without if r.acked_per_s is not None], 0),
            "cpu_us_per_reading_with": spread([r.cpu_us_per_reading for r in with_ if r.cpu_us_per_reading]),
            "cpu_us_per_reading_without": spread([r.cpu_us_per_reading for r in without if r.cpu_us_per_reading]),
            "throughput_ratio_by_round": spread([w.acked_per_s / o.acked_per_s for w, o in pairs], 3),  # type: ignore[operator]
            "cpu_ratio_by_round": spread([w.cpu_us_per_reading / o.cpu_us_per_reading for w, o in pairs], 3),  # type: ignore[operator]
        }
        w_med, o_med = entry["acked_per_s_with"]["median"], entry["acked_per_s_without"]["median"]
        entry["throughput_ratio_of_medians"] = round(w_med / o_med, 3) if w_med and o_med else None
        cw, co = entry["cpu_us_per_reading_with"]["median"], entry["cpu_us_per_reading_without"]["median"]
        entry["cpu_ratio_of_medians"] = round(cw / co, 3) if cw and co else None
        cost[f"{kind} b{batch}"] = entry
    out["cost"] = cost
    return out


def targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    pooled = summary["latency"]["pooled"]
    p99 = pooled["firing_p99_ms"]
    found = [
        {
            "target": f"crossing -> webhook p99 < {TARGET_P99_MS:g} ms (pooled)",
            "value": p99,
            "met": None if p99 is None else p99 < TARGET_P99_MS,
        }
    ]
    for name, entry in summary["cost"].items():
        if name.startswith("saturation"):
            ratio = entry["throughput_ratio_of_medians"]
            found.append(
                {
                    "target": f"{name}: acked/s with rules >= {TARGET_SHARE:.0%} of without",
                    "value": ratio,
                    "met": None if ratio is None else ratio >= TARGET_SHARE,
                }
            )
    return found


def _fmt(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def _range(s: dict[str, Any], spec: str = "") -> str:
    return f"{_fmt(s['median'], spec)} ({_fmt(s['min'], spec)}-{_fmt(s['max'], spec)})"


# long: the report's sections, one after another, in the order they are printed
def report(runs: list[Run], summary: dict[str, Any], args: argparse.Namespace, rule_count: int) -> str:
    lat = summary["latency"]
    pooled = lat["pooled"]
    lines = [
        f"Alerts on ingest: {args.devices} devices, {rule_count:,} rules ({args.star_rules} on every device), "
        f"one webhook channel on all; {args.rounds} round(s), runs with and without rules interleaved, each on "
        "a fresh server and SQLite database (default settings).",
        "",
        f"Crossing -> webhook ({args.rate:,} readings/s in all, batch 1; {args.crossing_devices} devices crossing "
        f"every {args.cross_every}th reading; {args.seconds:g} s a run). Time from the client sending the crossing "
        "reading to the receiver getting the POST; on loopback the client's send is the server's arrival to "
        "well under a millisecond.",
        f"  firing:   p50 {_range(lat['firing_p50_ms'])} ms, p99 {_range(lat['firing_p99_ms'])} ms "
        "(median of the runs, range)",
        f"            pooled over {pooled['crossings']:,} crossings: p50 {_fmt(pooled['firing_p50_ms'])} ms, "
        f"p99 {_fmt(pooled['firing_p99_ms'])} ms, max {_fmt(pooled['firing_max_ms'])} ms",
        f"  resolved: p50 {_range(lat['resolved_p50_ms'])} ms, p99 {_range(lat['resolved_p99_ms'])} ms; pooled "
        f"p50 {_fmt(pooled['resolved_p50_ms'])} ms, p99 {_fmt(pooled['resolved_p99_ms'])} ms",
        f"  webhooks received {lat['webhooks']:,} (signature verified: {lat['verified']:,}) for "
        f"{lat['crossings_sent']:,} crossings and {lat['clearings_sent']:,} clearings sent; without rules: "
        f"{lat['webhooks_without_rules']}",
        "",
        f"Cost on ingest, with {rule_count:,} rules vs none (median (range) over rounds; ratio of medians, and its range "
        "over the rounds' pairs):",
    ]
    header = ("runs", "acked/s with", "acked/s without", "ratio", "CPU µs/reading with", "without", "ratio")
    rows = [header]
    for name, e in summary["cost"].items():
        rows.append(
            (
                name,
                _range(e["acked_per_s_with"], ",.0f"),
                _range(e["acked_per_s_without"], ",.0f"),
                f"{_fmt(e['throughput_ratio_of_medians'], '.3f')} ({_fmt(e['throughput_ratio_by_round']['min'], '.2f')}"
                f"-{_fmt(e['throughput_ratio_by_round']['max'], '.2f')})",
                _range(e["cpu_us_per_reading_with"], ".1f"),
                _range(e["cpu_us_per_reading_without"], ".1f"),
                f"{_fmt(e['cpu_ratio_of_medians'], '.3f')}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    lines += ["", "Targets (issue, 2-core machine, SQLite):"]
    for t in targets(summary):
        mark = "-" if t["met"] is None else "met" if t["met"] else "short"
        lines.append(f"  {t['target']}: {_fmt(t['value'])} -> {mark}")
    lines += ["", "Runs:"]
    for r in runs:
        status = "ok" if r.ok else f"FAILED: {(r.failure or '').splitlines()[0][:200]}"
        lines.append(
            f"  round {r.round} {r.label}: {status}; acked/s {_fmt(r.acked_per_s, ',')}, server CPU "
            f"{_fmt(r.server_cpu_pct)}% (event loop {_fmt(r.server_loop_cpu_pct)}%), live p99 {_fmt(r.live_p99_ms)} ms"
            + (
                f", alert events {_fmt(r.alert_events, ',.0f')}, firing p99 {_fmt(r.firing_p99_ms)} ms"
                if r.rules
                else ""
            )
        )
        for note in notes(r):
            lines.append(f"    note: {note}")
    lines.append(
        f"Machine: {os.cpu_count()} cores, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end."
    )
    return "\n".join(lines)


def notes(r: Run) -> list[str]:
    out = []
    if r.ok and r.sent and r.acked is not None and r.acked < r.sent:
        out.append(f"{r.sent - r.acked:,} of {r.sent:,} readings sent were not acked")
    if r.errors:
        out.append(f"{r.errors} error answers or failed connections")
    if r.rules and r.kind == "paced" and r.ok:
        expected = (r.crossings or 0) + (r.clearings or 0)
        if (r.webhooks or 0) - (r.webhook_duplicates or 0) < expected:
            out.append(f"{r.webhooks} webhooks for {expected} crossings and clearings")
        if r.webhooks_verified != r.webhooks:
            out.append(f"{(r.webhooks or 0) - (r.webhooks_verified or 0)} webhooks failed the signature check")
        if r.webhooks_unmatched:
            out.append(f"{r.webhooks_unmatched} webhooks matched no reading sent")
    for key in ("storage_errors", "rejects", "frame_closes", "auth_refusals"):
        if r.server_metrics.get(key):
            out.append(f"server metric {key} = {r.server_metrics[key]:,.0f}")
    if r.server_log:
        out.append(f"server logged {len(r.server_log)} warning/error line(s), first: {r.server_log[0][:200]}")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import psutil  # noqa: F401  (used by ServerSampler)
    except ImportError:
        give_up("psutil is needed to sample the server's CPU: pip install psutil")
    node, npm = find_node()
    try:
        loadgen = prepare_loadgen(args.peers_dir, npm)
    except BenchError as exc:
        give_up(str(exc))
    receiver = Receiver()
    try:
        plan = Plan(args, node, loadgen, receiver)
        specs = plan_runs(args)
        say(f"{len(specs)} runs, each on a fresh server; webhook receiver on port {receiver.port}")
        runs = [run_one(plan, run) for run in specs]
    finally:
        receiver.stop()
    summary = summarize(runs)
    rule_count = max((r.rule_count for r in runs), default=0)
    text = report(runs, summary, args, rule_count)
    print(text, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(
            json.dumps(
                {
                    "benchmark": "pulsewire alerts",
                    "machine": {
                        "cpus": os.cpu_count(),
                        "platform": platform.platform(),
                        "python": platform.python_version(),
                        "node": node_version(node),
                        "load_average": [round(x, 2) for x in os.getloadavg()],
                    },
                    "config": {k: v for k, v in vars(args).items() if k != "peers_dir"},
                    "rule_count": rule_count,
                    "summary": summary,
                    "targets": targets(summary),
                    "runs": [asdict(r) for r in runs],
                }
            )
        )
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
