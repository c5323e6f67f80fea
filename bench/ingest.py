#!/usr/bin/env python3
"""Ingest benchmark: acked readings/s, live latency and memory of a real Pulsewire server.

What is measured
- Throughput (one run per --batch value B): N devices (--devices) connect to the device channel
  `/ws/device` and each keeps up to 8 telemetry batches of B readings un-acked, sending the next
  batch as soon as an ack frees a slot, for --seconds. The figure is *acked readings per second*:
  a reading counts only once the server has acked it, i.e. after its group commit (docs/protocol.md
  section 1). Every reading carries two values (`temperature` and `sent`, the send time), so the
  server stores twice as many values per second.
- Live latency (one more run): the same devices send batch-1 readings paced at --rate readings/s
  in all, while a dashboard-like client on `/ws/live` measures, for each reading it is pushed, the
  time from the device sending it to its arrival on the live channel: device -> validate ->
  commit -> push. Reported as p50/p99 in ms. The throughput runs report the same figures, taken
  under saturation.
- Server peak RSS (process and any children, sampled every 100 ms while the load runs) and the
  server's CPU use over the run: in all, on its main (event-loop) thread, and on its other threads
  (mostly the writer thread that runs the SQL). The load generator's CPU is reported too: it
  shares the machine's cores with the server.

How
- Load comes from `bench/peers/load.mjs`, a Node load generator for the device channel (also able
  to drive an MQTT broker, for side-by-side figures). It and its package.json are copied from
  --peers-dir into bench/.work/ and `npm install`ed there once.
- Every run starts its own `pulsewire serve` (with the runner the tests use, tests/support/server.py,
  through bench/harness) on a free port with a random admin key and a fresh temporary data folder, registers devices bench-0 .. bench-<N-1> through `POST /api/devices`,
  runs the load, reads `/metrics`, and stops the server (SIGINT, SIGKILL after a timeout). With
  the default SQLite database every run therefore also gets a fresh database, so the order of
  the runs does not matter. With --database-url the database is shared: each run then uses fresh
  device ids (bench-<tag>-<i>) and removes them with their readings afterwards.
- Inherited PULSEWIRE_* environment variables are not passed to the server, so only the
  settings named here (and the server's defaults) apply.
- Warnings and errors the server logs during a run are copied into the results, since the
  temporary folders are removed at the end.

Targets (issue figures, for a 2-core machine with SQLite): >= 50,000 acked readings/s at batch
20, >= 5,000 at batch 1, and live p99 < 50 ms while 5,000 readings/s are sent (and acked).

This is a benchmark, not a test: run it by hand, never inside a timed unit test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import secrets
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.cli import LOG_LINES_KEPT, BenchError, give_up, positive_float, positive_int, say
from harness.loadgen import (
    DEFAULT_PEERS_DIR,
    TARGET_RATE,
    WINDOW,
    find_node,
    node_version,
    plain_number,
    prepare_loadgen,
    run_loadgen,
)
from harness.sampler import ServerSampler
from harness.server import RUN_FAILURES, Server, bench_server, summarize_metrics

VALUES_PER_READING = 2  # load.mjs sends {temperature, sent}
TARGET_ACKED_PER_S = {1: 5_000, 20: 50_000}  # batch size -> acked readings/s
TARGET_P99_MS = 50.0
KEEP_UP_SHARE = 0.95  # the latency run must ack this share of the paced rate to count


# Command line


def _batch_size(text: str) -> int:
    value = positive_int(text)
    if value > 1000:
        raise argparse.ArgumentTypeError("at most 1000 readings per batch (docs/protocol.md section 1)")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/ingest.py",
        description="Benchmark the ingest path of a real Pulsewire server: acked readings/s per batch size, "
        "live-channel latency at a paced rate, and the server's peak memory. Each run starts a fresh server "
        "(and, with SQLite, a fresh database). Needs Node.js >= 18 and npm for the load generator.",
        epilog="Example: .venv/bin/python bench/ingest.py --devices 100 --batch 1 20 --seconds 10 --rate 5000. "
        "Progress goes to stderr; the results table to stdout (to stderr with --json, so stdout is pure JSON).",
    )
    parser.add_argument(
        "--devices", type=positive_int, default=100, help="simulated devices, each on its own WebSocket (default: 100)"
    )
    parser.add_argument(
        "--batch",
        type=_batch_size,
        nargs="+",
        default=[1, 20],
        metavar="B",
        help="readings per telemetry batch; one throughput run per value (default: 1 20)",
    )
    parser.add_argument("--seconds", type=positive_float, default=10.0, help="seconds of load per run (default: 10)")
    parser.add_argument(
        "--rate",
        type=positive_int,
        default=TARGET_RATE,
        help=f"readings/s in all, spread over the devices, for the latency run at batch 1 (default: {TARGET_RATE})",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL of the database to benchmark (e.g. postgresql+psycopg://user@host/db); "
        "default: SQLite in a fresh temporary folder per run",
    )
    parser.add_argument(
        "--server-flag",
        action="append",
        default=[],
        metavar="FLAG",
        help="extra flag for `pulsewire serve`, repeatable, e.g. --server-flag=--sqlite-synchronous=NORMAL",
    )
    parser.add_argument(
        "--peers-dir",
        type=Path,
        default=DEFAULT_PEERS_DIR,
        help=f"folder holding load.mjs and package.json (default: {DEFAULT_PEERS_DIR}; env PULSEWIRE_BENCH_PEERS)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="also print the results as one JSON object on stdout (the table then goes to stderr)",
    )
    return parser.parse_args(argv)


# Resource use


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# One run


@dataclass(frozen=True)
class RunSpec:
    kind: str  # "throughput" or "latency"
    batch: int
    rate: int | None  # readings/s in all; None: as fast as acks allow

    @property
    def label(self) -> str:
        if self.kind == "latency":
            return f"latency @ {self.rate:,}/s"
        return "throughput"


@dataclass
class RunResult:
    kind: str
    label: str
    batch: int
    devices: int
    rate: int | None
    seconds: float
    isolation: str
    ok: bool = False
    failure: str | None = None
    sent: int | None = None
    acked: int | None = None
    acked_per_s: int | None = None
    values_per_s: int | None = None
    errors: int | None = None
    connected: int | None = None
    live_got: int | None = None
    live_p50_ms: float | None = None
    live_p99_ms: float | None = None
    server_peak_rss_mb: float | None = None
    server_cpu_pct: float | None = None
    server_loop_thread_cpu_pct: float | None = None
    server_other_threads_cpu_pct: float | None = None
    loadgen_cpu_pct: float | None = None
    server_metrics: dict[str, float | None] = field(default_factory=dict)
    server_log: list[str] = field(default_factory=list)
    server_stop: str = ""
    loadgen_stderr: list[str] = field(default_factory=list)
    target: str | None = None
    verdict: str | None = None  # "pass", "short", "failed", or None when no target applies
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    devices: int
    seconds: float
    database_url: str | None
    node: str
    loadgen: Path
    server_flags: list[str]

    @property
    def isolation(self) -> str:
        if self.database_url:
            return (
                "fresh server per run; shared database, so fresh device ids per run "
                "(removed with their readings after it)"
            )
        return "fresh server and fresh SQLite database per run"


def plan_runs(batches: list[int], rate: int) -> list[RunSpec]:
    specs = [RunSpec("throughput", b, None) for b in dict.fromkeys(batches)]
    return [*specs, RunSpec("latency", 1, rate)]


def device_ids(count: int, *, shared_database: bool) -> list[str]:
    prefix = f"bench-{secrets.token_hex(3)}-" if shared_database else "bench-"
    return [f"{prefix}{i}" for i in range(count)]


def run_one(spec: RunSpec, plan: Plan, number: int, total: int) -> RunResult:
    """Start a server, register devices, drive the load, collect figures, stop the server."""
    pace = f"paced at {spec.rate:,} readings/s" if spec.rate else "as fast as acks allow"
    say(
        f"run {number}/{total}: {spec.label}, batch {spec.batch}, {pace}, {plan.devices} devices, "
        f"{plain_number(plan.seconds)} s ..."
    )
    result = RunResult(spec.kind, spec.label, spec.batch, plan.devices, spec.rate, plan.seconds, plan.isolation)
    with tempfile.TemporaryDirectory(prefix="pulsewire-bench-") as tmp:
        server = bench_server(Path(tmp), plan.database_url, plan.server_flags)
        try:
            say("  starting server...")
            server.start()
            drive(server, spec, plan, Path(tmp), result)
            result.ok = True
        except RUN_FAILURES as exc:
            result.failure = str(exc) or type(exc).__name__
            say("  run failed: " + result.failure.replace("\n", "\n    "))
        finally:
            result.server_stop = server.stop()
            result.server_log = server.log_lines()[:LOG_LINES_KEPT]
    judge(result)
    add_notes(result)
    return result


def drive(server: Server, spec: RunSpec, plan: Plan, tmp: Path, result: RunResult) -> None:
    """Register the devices, run the load and fill `result` in."""
    ids = device_ids(plan.devices, shared_database=plan.database_url is not None)
    say(f"  registering {len(ids)} devices...")
    tokens_file = tmp / "tokens.txt"
    tokens_file.write_text("\n".join(server.register_many(ids)) + "\n")
    try:
        say("  running load...")
        cpu_before = children_cpu_seconds()
        with ServerSampler(server.pid) as sampler:
            load = run_loadgen(
                plan.node,
                plan.loadgen,
                f"ws://127.0.0.1:{server.port}",
                plan.devices,
                spec.batch,
                plan.seconds,
                tokens_file=tokens_file,
                rate=spec.rate,
            )
        loadgen_cpu = children_cpu_seconds() - cpu_before
        if (code := server.crashed()) is not None:
            raise BenchError(f"server exited with {code} during the run:\n{server.log_tail()}")
        result.server_metrics = summarize_metrics(server.metrics())
    finally:
        if plan.database_url and server.crashed() is None:
            remove_devices(server, ids)
    fill_from_load(result, load)
    fill_resources(result, sampler, loadgen_cpu, busy_seconds=float(load.get("seconds") or plan.seconds))
    say(
        f"  acked {result.acked_per_s:,} readings/s, live p50/p99 {result.live_p50_ms}/{result.live_p99_ms} ms, "
        f"peak RSS {result.server_peak_rss_mb} MB"
    )


def remove_devices(server: Server, ids: list[str]) -> None:
    """Take this run's devices and their readings out of the shared database; best effort, says what stayed."""
    failed = server.remove(ids)
    if failed:
        say(f"  could not remove {len(failed)} bench device(s) from the database, e.g. {failed[0]}")


def fill_resources(result: RunResult, sampler: ServerSampler, loadgen_cpu: float, busy_seconds: float) -> None:
    """Peak RSS, and CPU in % of one core over the load's own duration (connect, send, drain).

    The server idles while node starts and its live worker connects, so that time is left out.
    """
    result.server_peak_rss_mb = round(sampler.peak_rss / 2**20, 1)
    result.loadgen_cpu_pct = _percent(loadgen_cpu, busy_seconds)
    result.server_cpu_pct = _percent(sampler.cpu_seconds, busy_seconds)
    result.server_loop_thread_cpu_pct = _percent(sampler.loop_cpu_seconds, busy_seconds)
    if sampler.cpu_seconds is not None and sampler.loop_cpu_seconds is not None:
        result.server_other_threads_cpu_pct = _percent(sampler.cpu_seconds - sampler.loop_cpu_seconds, busy_seconds)


def _percent(cpu_seconds: float | None, wall_seconds: float) -> float | None:
    return None if cpu_seconds is None else round(100 * cpu_seconds / wall_seconds, 1)


def fill_from_load(result: RunResult, load: dict[str, Any]) -> None:
    for key in ("sent", "acked", "acked_per_s", "errors", "connected", "live_got", "live_p50_ms", "live_p99_ms"):
        setattr(result, key, load.get(key))
    result.values_per_s = (result.acked_per_s or 0) * VALUES_PER_READING
    result.loadgen_stderr = load.get("stderr", [])


def judge(result: RunResult) -> None:
    """Set the issue's target for this run, if one applies, and whether the run met it."""
    if result.kind == "throughput" and result.batch in TARGET_ACKED_PER_S:
        goal = TARGET_ACKED_PER_S[result.batch]
        result.target = f">= {goal:,} readings/s"
        met = result.acked_per_s is not None and result.acked_per_s >= goal
    elif result.kind == "latency" and result.rate == TARGET_RATE:
        result.target = f"p99 < {TARGET_P99_MS:g} ms at {TARGET_RATE:,}/s"
        kept_up = result.acked_per_s is not None and result.acked_per_s >= KEEP_UP_SHARE * TARGET_RATE
        met = kept_up and result.live_p99_ms is not None and result.live_p99_ms < TARGET_P99_MS
    else:
        met = None
    if not result.ok:
        result.verdict = "failed"
    elif met is not None:
        result.verdict = "pass" if met else "short"


def add_notes(result: RunResult) -> None:
    """Anything odd about the run: lost acks, errors, dropped live clients, server log lines."""
    notes = result.notes
    if result.failure:
        notes.append(f"run failed: {result.failure.splitlines()[0]}")
    if not result.ok:
        return
    if result.connected is not None and result.connected < result.devices:
        notes.append(f"only {result.connected} of {result.devices} devices connected")
    if result.errors:
        notes.append(f"load generator counted {result.errors} errors (error answers or failed connections)")
    if result.sent is not None and result.acked is not None and result.acked < result.sent:
        notes.append(
            f"{result.sent - result.acked:,} of {result.sent:,} readings sent were not acked "
            "within the load generator's 3 s drain"
        )
    committed = result.server_metrics.get("committed_readings")
    if committed is not None and result.acked is not None and committed < result.acked:
        notes.append(f"server counted {committed:,.0f} committed readings but {result.acked:,} were acked")
    if result.live_got is not None and result.acked and result.live_got < result.acked:
        notes.append(f"live client received {result.live_got:,} of {result.acked:,} acked readings")
    for key in ("storage_errors", "rejects", "frame_closes", "auth_refusals", "live_clients_dropped"):
        if result.server_metrics.get(key):
            notes.append(f"server metric {key} = {result.server_metrics[key]:,.0f}")
    if result.kind == "latency" and result.rate and (result.acked_per_s or 0) < KEEP_UP_SHARE * result.rate:
        notes.append(f"did not keep up with the paced {result.rate:,} readings/s")
    if result.server_log:
        count, first = len(result.server_log), result.server_log[0][:200]
        notes.append(f"server logged {count} warning/error line(s), first: {first}")
    if "killed" in result.server_stop or "already exited" in result.server_stop:
        notes.append(f"server {result.server_stop}")


# Report


def format_table(results: list[RunResult], plan: Plan) -> str:
    header = (
        "run",
        "batch",
        "devices",
        "acked readings/s",
        "live p50 ms",
        "live p99 ms",
        "peak RSS MB",
        "server CPU %",
        "target",
        "mark",
    )
    rows = [header] + [
        (
            r.label,
            str(r.batch),
            str(r.devices),
            _fmt(r.acked_per_s, ","),
            _fmt(r.live_p50_ms, ".1f"),
            _fmt(r.live_p99_ms, ".1f"),
            _fmt(r.server_peak_rss_mb, ".0f"),
            _fmt(r.server_cpu_pct, ".0f"),
            r.target or "-",
            r.verdict or "-",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    numeric = {1, 2, 3, 4, 5, 6, 7}
    lines = [
        "  ".join(
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += ["", *footnotes(results, plan)]
    return "\n".join(lines)


def footnotes(results: list[RunResult], plan: Plan) -> list[str]:
    out = [
        f"Each reading carries {VALUES_PER_READING} values; {WINDOW} un-acked batches per device; "
        f"{plain_number(plan.seconds)} s per run; {plan.isolation}.",
        f"Database: {describe_database(plan.database_url)}. Machine: {os.cpu_count()} cores; "
        "load generator and server share them. Server CPU % is of one core (the event loop is one thread).",
        *([f"Server flags: {' '.join(plan.server_flags)}."] if plan.server_flags else []),
        "Targets (issue, 2-core machine, SQLite): >= 50,000 acked readings/s at batch 20, >= 5,000 at batch 1, "
        "live p99 < 50 ms at 5,000 readings/s.",
    ]
    for r in results:
        cpu = (
            f"CPU: server {_fmt(r.server_cpu_pct, '.0f')}% "
            f"(event loop {_fmt(r.server_loop_thread_cpu_pct, '.0f')}%, "
            f"other threads {_fmt(r.server_other_threads_cpu_pct, '.0f')}%), "
            f"load generator {_fmt(r.loadgen_cpu_pct, '.0f')}%"
        )
        m = r.server_metrics
        commits = (
            (
                f"; {m['group_commits']:,.0f} commits, {m['mean_batches_per_commit']} batches and "
                f"{m['mean_commit_ms']} ms each on average"
            )
            if m.get("group_commits")
            else ""
        )
        out.append(f"- {r.label}, batch {r.batch}: {cpu}{commits}.")
        out += [f"    note: {note}" for note in r.notes]
    return out


def describe_database(url: str | None) -> str:
    if url is None:
        return "SQLite (default settings: WAL, synchronous=FULL) in a temporary folder"
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _fmt(value: float | int | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def report_json(results: list[RunResult], plan: Plan, node: str) -> dict[str, Any]:
    return {
        "benchmark": "pulsewire ingest",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "node": node_version(node),
        },
        "config": {
            "devices": plan.devices,
            "seconds": plan.seconds,
            "window": WINDOW,
            "values_per_reading": VALUES_PER_READING,
            "database": describe_database(plan.database_url),
            "server_flags": plan.server_flags,
            "isolation": plan.isolation,
        },
        "runs": [asdict(r) for r in results],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import psutil  # noqa: F401  (used by ServerSampler)
    except ImportError:
        give_up("psutil is needed to sample the server's memory: pip install psutil")
    node, npm = find_node()
    try:
        loadgen = prepare_loadgen(args.peers_dir, npm)
    except BenchError as exc:
        give_up(str(exc))
    plan = Plan(args.devices, args.seconds, args.database_url, node, loadgen, args.server_flag)
    specs = plan_runs(args.batch, args.rate)
    say(f"{len(specs)} runs; {plan.isolation}")
    results = [run_one(spec, plan, i, len(specs)) for i, spec in enumerate(specs, 1)]
    table = format_table(results, plan)
    if args.json:
        print(table, file=sys.stderr)
        print(json.dumps(report_json(results, plan, node)))
    else:
        print(table)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
