#!/usr/bin/env python3
"""Cluster benchmark: ingest and live latency with `pulsewire serve --workers 1, 2, 4`, the latency the
cross-instance path adds, and the CPU each part of the system uses (issue 16, docs/cluster.md).

The set-up
- PostgreSQL at 127.0.0.1:5432 (--postgres), a fresh database for every run, dropped after it; a
  private redis-server (tests/support/redisserver.py) for every run; every server started with
  `--redis-url`, so even one worker takes the cluster path (claims, publishes on the bus).
  Protective limits stay at their defaults: every device connects from 127.0.0.1.
- Load: the load generator (bench/peers/load.mjs): --devices devices, batch --batch, up to 8
  batches un-acked each; every reading carries `sent`, its send time, and a live subscriber (a
  dashboard) measures device send -> dashboard receive.

What is measured, round by round (runs interleaved: workers 1, 2, 4, then two instances)
1. `--workers N` on one port, devices and the dashboard on that port (the kernel hands each
   connection to a worker, so most readings reach the dashboard through Redis from another worker):
   first a paced load (--rate readings/s in all, batch 1, --paced-seconds), then a saturating one
   (as fast as acks allow, --seconds): acked readings/s and live p50/p99 of each.
2. Two instances, two `pulsewire serve` on two ports, same database and Redis: the devices on A,
   one dashboard on A and one on B, paced as above. Same instance (A) against cross-instance (B):
   p50/p99 of each and the difference (B - A), per round.
3. CPU during each saturating load, from /proc/<pid>/stat (utime + stime) before and after it:
   the server (supervisor and workers), PostgreSQL's backends of this run's database, PostgreSQL's
   background writers (walwriter, checkpointer, background writer: shared by every database on the
   server), redis-server, and the load generator (node, with its live subscriber). Seconds, share of
   all of them, and CPU per acked reading.
4. An estimate for an 8-core machine, from the CPU per acked reading of the server, PostgreSQL and
   Redis (the load generator left out: devices are elsewhere in production) with 1, 2 and 4
   workers; `estimate` and the report say how.

This is a benchmark, not a test: run it by hand (bench/cluster.py --help); `--quick` is a smoke run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import proctime
from harness.cli import LOG_LINES_KEPT, BenchError, give_up, positive_float, positive_int, say
from harness.loadgen import DEFAULT_PEERS_DIR, WINDOW, find_node, node_version, prepare_loadgen, run_loadgen
from harness.server import RUN_FAILURES, Server, bench_server

DEFAULT_POSTGRES = os.environ.get("PULSEWIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
ESTIMATE_CORES = 8
PG_BACKGROUND = ("walwriter", "checkpointer", "background writer")
PARTS = ("server", "postgres", "postgres background", "redis", "load generator")
SYSTEM_PARTS = ("server", "postgres", "postgres background", "redis")  # what a production machine runs
QUICK = {"devices": 10, "seconds": 2.0, "paced_seconds": 2.0, "rate": 500, "rounds": 1}


# Command line


# long: one add_argument per option, a flat list to scan
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/cluster.py",
        description="Benchmark Pulsewire as a cluster on PostgreSQL and Redis: acked readings/s and live latency "
        "with --workers 1, 2 and 4, the latency the cross-instance path adds, the CPU of each part, and an "
        "estimate for an 8-core machine. Needs PostgreSQL, redis-server, Node.js >= 18 and npm.",
        epilog="Example: .venv/bin/python bench/cluster.py (about 3 minutes); --quick for a smoke run. Progress "
        "goes to stderr, results to stdout (to stderr with --json, so stdout is pure JSON). Exit status: 0 if "
        "every run worked, 1 if one failed, 2 if the set-up is impossible.",
    )
    parser.add_argument("--devices", type=positive_int, default=100, help="devices in all (default: 100)")
    parser.add_argument("--batch", type=positive_int, default=1, help="readings per batch, saturating (default: 1)")
    parser.add_argument(
        "--workers", type=positive_int, nargs="+", default=[1, 2, 4], metavar="N", help="worker counts (default: 1 2 4)"
    )
    parser.add_argument("--seconds", type=positive_float, default=6.0, help="seconds per saturating load (default: 6)")
    parser.add_argument(
        "--rate", type=positive_int, default=5_000, help="readings/s in all, paced loads, batch 1 (default: 5000)"
    )
    parser.add_argument("--paced-seconds", type=positive_float, default=5.0, help="seconds per paced load (default: 5)")
    parser.add_argument("--rounds", type=positive_int, default=3, help="rounds of every run (default: 3)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: " + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in QUICK.items()),
    )
    parser.add_argument(
        "--postgres",
        default=DEFAULT_POSTGRES,
        help=f"PostgreSQL to make each run's database on (default: {DEFAULT_POSTGRES}; env PULSEWIRE_TEST_POSTGRES)",
    )
    parser.add_argument(
        "--peers-dir",
        type=Path,
        default=DEFAULT_PEERS_DIR,
        help=f"folder holding load.mjs and package.json (default: {DEFAULT_PEERS_DIR}; env PULSEWIRE_BENCH_PEERS)",
    )
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    args.workers = list(dict.fromkeys(args.workers))
    return args


# Figures


def spread(values: list[float], digits: int = 1) -> dict[str, float | None]:
    """Median and range of per-round figures."""
    if not values:
        return {"median": None, "min": None, "max": None}
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def linear_fit(points: dict[int, float]) -> tuple[float, float]:
    """Least squares `y = a + b x` through {x: y}; with one point, a flat line through it."""
    if len(points) == 1:
        return next(iter(points.values())), 0.0
    xs, ys = list(points), list(points.values())
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


# The services behind a run


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[tuple[str, str]]:
    """A new database on the PostgreSQL of `admin_url`, dropped afterwards: (its name, its SQLAlchemy URL)."""
    import psycopg

    name = "pulsewire_bench_" + secrets.token_hex(5)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield name, f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def private_redis() -> Iterator[Any]:
    from tests.support.redisserver import PrivateRedis  # importable once harness.server is (it says why)

    redis = PrivateRedis()
    try:
        redis.start()
        yield redis
    finally:
        redis.destroy()


def children_cpu_seconds() -> float:
    """CPU of this process's children that have ended and been waited for: here, the load generator."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# CPU by part


@dataclass(frozen=True)
class System:
    """Where each part's processes are found."""

    admin_url: str
    database: str
    server_pids: list[int]  # supervisors (or servers of one process)
    redis_pid: int

    def finder(self, conn: Any) -> Any:
        """A function naming each part's processes now (not the load generator's: see `measure`), asking
        PostgreSQL over `conn` for its backends."""

        def find() -> dict[str, list[int]]:
            rows = conn.execute("SELECT pid, datname, backend_type FROM pg_stat_activity").fetchall()
            return {
                "server": [pid for top in self.server_pids for pid in proctime.with_descendants(top)],
                "postgres": [pid for pid, datname, _ in rows if datname == self.database],
                "postgres background": [pid for pid, db, kind in rows if db is None and kind in PG_BACKGROUND],
                "redis": [self.redis_pid],
            }

        return find


@dataclass
class Cpu:
    seconds: dict[str, float] = field(default_factory=dict)  # part -> CPU seconds over the load
    wall_s: float = 0.0
    per_process: dict[str, list[float]] = field(default_factory=dict)  # part -> each process's seconds
    processes: dict[str, int] = field(default_factory=dict)  # part -> processes seen
    ended: dict[str, int] = field(default_factory=dict)  # part -> processes that ended during the load


def measure(system: System, load: Any) -> tuple[Any, Cpu]:
    """Call `load()` (which runs the load generator to its end) and the CPU each part used meanwhile."""
    import psycopg

    with psycopg.connect(system.admin_url, autocommit=True) as conn:
        children_before, start = children_cpu_seconds(), time.monotonic()
        with proctime.Tracker(system.finder(conn)) as tracker:
            result = load()
    cpu = Cpu(wall_s=round(time.monotonic() - start, 2))
    for part in tracker.first:
        used = tracker.used(part)
        cpu.seconds[part] = round(used.seconds, 2)
        cpu.per_process[part] = [round(x, 2) for x in tracker.per_process(part)]
        cpu.processes[part], cpu.ended[part] = used.processes, used.ended
    cpu.seconds["load generator"] = round(children_cpu_seconds() - children_before, 2)
    return result, cpu


# Runs


@dataclass
class Run:
    kind: str  # "workers" (one `serve --workers N`) or "two instances"
    round: int
    workers: int
    ok: bool = False
    failure: str | None = None
    paced: dict[str, Any] = field(default_factory=dict)  # the load generator's figures
    saturated: dict[str, Any] = field(default_factory=dict)
    cpu: Cpu | None = None  # during the saturating load
    server_log: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"--workers {self.workers}" if self.kind == "workers" else "two instances"

    def load_s(self) -> float | None:
        """The saturating load's duration, drain included (the load generator's start and live connect left out)."""
        seconds = self.saturated.get("seconds")
        return float(seconds) if seconds and self.cpu is not None else None

    def us_per_reading(self, parts: tuple[str, ...]) -> float | None:
        acked = self.saturated.get("acked")
        if self.cpu is None or not acked:
            return None
        return round(1e6 * sum(self.cpu.seconds.get(p, 0.0) for p in parts) / acked, 1)


@dataclass(frozen=True)
class Plan:
    args: argparse.Namespace
    node: str
    loadgen: Path

    @property
    def device_ids(self) -> list[str]:
        return [f"bench-{i}" for i in range(self.args.devices)]


LOAD_KEYS = (
    "seconds",
    "sent",
    "acked",
    "acked_per_s",
    "errors",
    "connected",
    "live_got",
    "live_p50_ms",
    "live_p99_ms",
    "lives",
)


def figures(load: dict[str, Any]) -> dict[str, Any]:
    return {key: load.get(key) for key in LOAD_KEYS}


def plan_runs(args: argparse.Namespace) -> list[Run]:
    """Round by round: each worker count, then the two instances."""
    runs = []
    for number in range(1, args.rounds + 1):
        runs += [Run("workers", number, n) for n in args.workers]
        runs.append(Run("two instances", number, 1))
    return runs


def run_one(plan: Plan, run: Run) -> Run:
    """A fresh database, Redis and server(s); the run's loads; everything stopped and removed."""
    say(f"round {run.round}: {run.label} ...")
    servers: list[Server] = []
    with (
        tempfile.TemporaryDirectory(prefix="pulsewire-bench-cluster-") as tmp,
        fresh_database(plan.args.postgres) as (database, url),
        private_redis() as redis,
    ):
        try:
            if run.kind == "workers":
                servers.append(start(Path(tmp) / "a", url, redis.url, run.workers))
                redis_pid = int(redis.client().info()["process_id"])
                one_port(plan, run, servers[0], System(plan.args.postgres, database, [servers[0].pid], redis_pid), tmp)
            else:
                servers.append(start(Path(tmp) / "a", url, redis.url, 1))
                servers.append(start(Path(tmp) / "b", url, redis.url, 1, admin_key=servers[0].admin_key))
                two_instances(plan, run, servers[0], servers[1], tmp)
            for server in servers:
                if (code := server.crashed()) is not None:
                    raise BenchError(f"a server exited with {code} during the run:\n{server.log_tail()}")
            run.ok = True
        except RUN_FAILURES as exc:
            run.failure = str(exc) or type(exc).__name__
            say("  run failed: " + run.failure.replace("\n", "\n    "))
        finally:
            for server in servers:
                server.stop()
                run.server_log += server.log_lines()[:LOG_LINES_KEPT]
    return run


def start(data_dir: Path, database_url: str, redis_url: str, workers: int, admin_key: str | None = None) -> Server:
    server = bench_server(data_dir, database_url, ["--workers", str(workers), "--redis-url", redis_url])
    if admin_key is not None:
        server.admin_key = admin_key  # instances of one cluster share their admin key (docs/cluster.md)
    return server.start()


def one_port(plan: Plan, run: Run, server: Server, system: System, tmp: str) -> None:
    a = plan.args
    tokens_file = Path(tmp) / "tokens.txt"
    tokens_file.write_text("\n".join(server.register_many(plan.device_ids)) + "\n")
    url = f"ws://127.0.0.1:{server.port}"
    run.paced = figures(
        run_loadgen(plan.node, plan.loadgen, url, a.devices, 1, a.paced_seconds, tokens_file=tokens_file, rate=a.rate)
    )
    say(
        f"  paced {run.paced['acked_per_s']:,}/s: live p50/p99 {run.paced['live_p50_ms']}/{run.paced['live_p99_ms']} ms"
    )
    load, run.cpu = measure(
        system,
        lambda: run_loadgen(plan.node, plan.loadgen, url, a.devices, a.batch, a.seconds, tokens_file=tokens_file),
    )
    run.saturated = figures(load)
    say(
        f"  saturated {run.saturated['acked_per_s']:,}/s: live p50/p99 {run.saturated['live_p50_ms']}/"
        f"{run.saturated['live_p99_ms']} ms; CPU µs/reading (server, PostgreSQL, Redis) "
        f"{run.us_per_reading(SYSTEM_PARTS)}"
    )


def two_instances(plan: Plan, run: Run, a_server: Server, b_server: Server, tmp: str) -> None:
    a = plan.args
    tokens_file = Path(tmp) / "tokens.txt"
    tokens_file.write_text("\n".join(a_server.register_many(plan.device_ids)) + "\n")
    load = run_loadgen(
        plan.node,
        plan.loadgen,
        a_server.ws_base,
        a.devices,
        1,
        a.paced_seconds,
        tokens_file=tokens_file,
        rate=a.rate,
        lives=[a_server.ws_base, b_server.ws_base],
    )
    run.paced = figures(load)
    same, cross = run.paced["lives"]
    say(
        f"  paced {run.paced['acked_per_s']:,}/s: same instance p50/p99 {same['p50_ms']}/{same['p99_ms']} ms, "
        f"cross-instance {cross['p50_ms']}/{cross['p99_ms']} ms"
    )


# Summary


def summarize(runs: list[Run], args: argparse.Namespace) -> dict[str, Any]:
    ok = [r for r in runs if r.ok]
    workers = {n: worker_summary([r for r in ok if r.kind == "workers" and r.workers == n]) for n in args.workers}
    first = workers[args.workers[0]]["acked_per_s"]["median"]
    for entry in workers.values():
        median = entry["acked_per_s"]["median"]
        entry["throughput_vs_first"] = round(median / first, 2) if median and first else None
    return {
        "workers": {str(n): entry for n, entry in workers.items()},
        "two_instances": cross_summary([r for r in ok if r.kind == "two instances"]),
        "estimate": estimate(workers),
    }


def worker_summary(runs: list[Run]) -> dict[str, Any]:
    def sat(key: str) -> list[float]:
        return [float(r.saturated[key]) for r in runs if r.saturated.get(key) is not None]

    def paced(key: str) -> list[float]:
        return [float(r.paced[key]) for r in runs if r.paced.get(key) is not None]

    measured = [r for r in runs if r.cpu is not None and r.saturated.get("acked")]
    return {
        "acked_per_s": spread(sat("acked_per_s"), 0),
        "saturated_p50_ms": spread(sat("live_p50_ms")),
        "saturated_p99_ms": spread(sat("live_p99_ms")),
        "paced_acked_per_s": spread(paced("acked_per_s"), 0),
        "paced_p50_ms": spread(paced("live_p50_ms")),
        "paced_p99_ms": spread(paced("live_p99_ms")),
        "cpu": cpu_summary(measured),
    }


def cpu_summary(runs: list[Run]) -> dict[str, Any]:
    """Per part: CPU seconds, share of all parts' CPU, µs per acked reading; and how busy the machine was."""
    cores = os.cpu_count() or 1
    out: dict[str, Any] = {"parts": {}}
    for part in PARTS:
        seconds = [r.cpu.seconds.get(part, 0.0) for r in runs if r.cpu is not None]
        shares = [100 * r.cpu.seconds.get(part, 0.0) / sum(r.cpu.seconds.values()) for r in runs if r.cpu]
        out["parts"][part] = {
            "seconds": spread(seconds, 2),
            "share_pct": spread(shares),
            "us_per_reading": spread([x for r in runs if (x := r.us_per_reading((part,))) is not None]),
        }
    out["system_us_per_reading"] = spread([x for r in runs if (x := r.us_per_reading(SYSTEM_PARTS)) is not None])
    out["machine_busy_pct"] = spread(
        [100 * sum(r.cpu.seconds.values()) / (cores * wall) for r in runs if (wall := r.load_s())]
    )
    return out


def cross_summary(runs: list[Run]) -> dict[str, Any]:
    """Same instance (the first live subscriber, on A) against cross-instance (the second, on B)."""
    pairs = [r.paced["lives"] for r in runs if len(r.paced.get("lives") or []) == 2]
    pairs = [(same, cross) for same, cross in pairs if None not in (same["p50_ms"], cross["p50_ms"])]
    out: dict[str, Any] = {}
    for q in ("p50", "p99"):
        out[f"same_{q}_ms"] = spread([same[f"{q}_ms"] for same, _ in pairs])
        out[f"cross_{q}_ms"] = spread([cross[f"{q}_ms"] for _, cross in pairs])
        out[f"added_{q}_ms"] = spread([cross[f"{q}_ms"] - same[f"{q}_ms"] for same, cross in pairs])
    out["same_got"] = sum(same["got"] or 0 for same, _ in pairs)
    out["cross_got"] = sum(cross["got"] or 0 for _, cross in pairs)
    out["acked"] = sum(r.paced.get("acked") or 0 for r in runs)
    return out


def estimate(workers: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Acked readings/s on ESTIMATE_CORES cores, from the CPU per acked reading measured with 1, 2, 4 workers.

    With N workers a reading costs c(N) µs of CPU in all (server, PostgreSQL, Redis; the load
    generator left out: devices are elsewhere in production), s(N) of it in the server's processes.
    Both grow with N (every worker is one more instance each reading is fanned out to), so each is
    fitted with a line in N. Two bounds then hold: every core busy, T <= cores / c(N); and each
    worker at most one core busy (its event loop is one thread), T <= N / s(N). The estimate is the
    best N's lower bound.
    """
    system, server = per_reading(workers, "system"), per_reading(workers, "server")
    if not system or not server:
        return {"cores": ESTIMATE_CORES, "readings_per_s": None}
    c, s = linear_fit(system), linear_fit(server)
    by_workers = {}
    for n in range(1, ESTIMATE_CORES + 1):
        cores_bound = ESTIMATE_CORES * 1e6 / max(c[0] + c[1] * n, 1e-9)
        workers_bound = n * 1e6 / max(s[0] + s[1] * n, 1e-9)
        by_workers[str(n)] = round(min(cores_bound, workers_bound), -2)
    best = max(by_workers, key=lambda n: by_workers[n])
    return {
        "cores": ESTIMATE_CORES,
        "system_us_by_workers": {str(n): v for n, v in system.items()},
        "server_us_by_workers": {str(n): v for n, v in server.items()},
        "system_fit_us": [round(c[0], 1), round(c[1], 2)],
        "server_fit_us": [round(s[0], 1), round(s[1], 2)],
        "readings_per_s_by_workers": by_workers,
        "workers": int(best),
        "readings_per_s": by_workers[best],
    }


def per_reading(workers: dict[int, dict[str, Any]], which: str) -> dict[int, float]:
    """{workers: median µs per acked reading} of the system (server, PostgreSQL, Redis) or of the server."""
    out = {}
    for n, e in workers.items():
        cpu = e["cpu"]
        value = cpu["system_us_per_reading"] if which == "system" else cpu["parts"]["server"]["us_per_reading"]
        if value["median"]:
            out[n] = value["median"]
    return out


# Report


def _fmt(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def _range(s: dict[str, Any], spec: str = "") -> str:
    return f"{_fmt(s['median'], spec)} ({_fmt(s['min'], spec)}-{_fmt(s['max'], spec)})"


def table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  " + "  ".join("-" * w for w in widths))
    return lines


def report(runs: list[Run], summary: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"Cluster on PostgreSQL ({args.postgres.rsplit('@', 1)[-1].rsplit('/', 1)[0]}, a fresh database per run) "
        f"and a private redis-server per run, every server with --redis-url; {args.devices} devices from 127.0.0.1, "
        f"{WINDOW} un-acked batches each; {args.rounds} round(s), runs interleaved (--workers "
        f"{', '.join(map(str, args.workers))}, then two instances); median (range) over the rounds.",
        "",
        *report_workers(summary, args),
        "",
        *report_cross(summary["two_instances"], args),
        "",
        *report_cpu(summary, args),
        "",
        *report_estimate(summary["estimate"]),
        "",
        "Runs:",
        *report_runs(runs, args.devices),
        f"Machine: {os.cpu_count()} cores, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end.",
    ]
    return "\n".join(lines)


def report_workers(summary: dict[str, Any], args: argparse.Namespace) -> list[str]:
    header = (
        "workers",
        f"acked readings/s, batch {args.batch}, saturated",
        f"vs {args.workers[0]}",
        "live p50 / p99 ms, saturated",
        f"live p50 / p99 ms at {args.rate:,}/s",
    )
    rows = [header]
    for n, e in summary["workers"].items():
        rows.append(
            (
                n,
                _range(e["acked_per_s"], ",.0f"),
                f"x{_fmt(e['throughput_vs_first'], '.2f')}",
                f"{_range(e['saturated_p50_ms'])} / {_range(e['saturated_p99_ms'])}",
                f"{_range(e['paced_p50_ms'])} / {_range(e['paced_p99_ms'])}",
            )
        )
    return ["1. One port, `pulsewire serve --workers N` (devices and one dashboard on it):", *table(rows)]


def report_cross(c: dict[str, Any], args: argparse.Namespace) -> list[str]:
    return [
        f"2. The cross-instance path: two `pulsewire serve` (one database, one Redis), the devices on A, a dashboard "
        f"on A and one on B; {args.rate:,} readings/s, batch 1, {args.paced_seconds:g} s a run.",
        f"  same instance (A):  p50 {_range(c['same_p50_ms'])} ms, p99 {_range(c['same_p99_ms'])} ms",
        f"  cross-instance (B): p50 {_range(c['cross_p50_ms'])} ms, p99 {_range(c['cross_p99_ms'])} ms",
        f"  added by the cross-instance path (B - A, per round): p50 {_range(c['added_p50_ms'], '+.1f')} ms, "
        f"p99 {_range(c['added_p99_ms'], '+.1f')} ms",
        f"  readings received: A {c['same_got']:,}, B {c['cross_got']:,}, of {c['acked']:,} acked",
    ]


def report_cpu(summary: dict[str, Any], args: argparse.Namespace) -> list[str]:
    header = ("workers", *PARTS, "all but the load generator", "machine busy")
    rows = [header]
    for n, e in summary["workers"].items():
        parts = e["cpu"]["parts"]
        cells = [
            f"{_fmt(parts[p]['seconds']['median'], '.1f')} s {_fmt(parts[p]['share_pct']['median'], '.0f')}% "
            f"{_fmt(parts[p]['us_per_reading']['median'], '.1f')} µs"
            for p in PARTS
        ]
        system = _range(e["cpu"]["system_us_per_reading"], ".1f") + " µs"
        rows.append((n, *cells, system, f"{_fmt(e['cpu']['machine_busy_pct']['median'], '.0f')}%"))
    return [
        f"3. CPU during the saturating loads ({args.seconds:g} s), from /proc/<pid>/stat: seconds, share of all the "
        "parts, µs per acked reading (medians). server: supervisor and workers; postgres: the backends of the "
        "run's database; postgres background: walwriter, checkpointer, background writer (shared with every "
        "database on that PostgreSQL); load generator: node with its live subscriber. Machine busy: all of it, "
        "of every core over the load.",
        *table(rows),
    ]


def report_estimate(e: dict[str, Any]) -> list[str]:
    if e.get("readings_per_s") is None:
        return [f"4. {e['cores']}-core estimate: no CPU figures."]

    def listed(values: dict[str, float]) -> str:
        return ", ".join(f"{v:.1f}" for v in values.values()) + f" µs with {', '.join(values)} workers"

    (ca, cb), (sa, sb) = e["system_fit_us"], e["server_fit_us"]
    curve = ", ".join(f"{n}: {v:,.0f}" for n, v in e["readings_per_s_by_workers"].items())
    return [
        f"4. Estimate for {e['cores']} cores (server, PostgreSQL and Redis on them, devices elsewhere): about "
        f"{e['readings_per_s']:,.0f} acked readings/s, with --workers {e['workers']}.",
        f"  How: CPU per acked reading, server + PostgreSQL + Redis, c(N) = {listed(e['system_us_by_workers'])}; "
        f"of it in the server's processes, s(N) = {listed(e['server_us_by_workers'])}. Fitted with lines "
        f"(every worker is one more instance each reading is fanned out to): c(N) = {ca:.1f} + {cb:.1f} N, "
        f"s(N) = {sa:.1f} + {sb:.1f} N. Readings/s with N workers = the lower of {e['cores']} cores / c(N) "
        "(every core busy) and N / s(N) (each worker's event loop at most one core busy): "
        f"{curve}.",
        "  It assumes the cores can be kept busy: PostgreSQL's commits (fsync), its locks and the one Redis "
        "thread not becoming the bound first, and a load spread evenly over the workers.",
    ]


def report_runs(runs: list[Run], devices: int) -> list[str]:
    out = []
    for r in runs:
        status = "ok" if r.ok else f"FAILED: {(r.failure or '').splitlines()[0][:200]}"
        sat = f", saturated {_fmt(r.saturated.get('acked_per_s'), ',')}/s" if r.kind == "workers" else ""
        server_cpu = ""
        if r.cpu is not None:
            server_cpu = ", server processes' CPU s " + " ".join(f"{x:.1f}" for x in r.cpu.per_process["server"])
        out.append(
            f"  round {r.round} {r.label}: {status}; paced {_fmt(r.paced.get('acked_per_s'), ',')}/s{sat}{server_cpu}"
        )
        out += [f"    note: {note}" for note in notes(r, devices)]
    return out


def notes(r: Run, devices: int) -> list[str]:
    out = []
    for name, load in (("paced", r.paced), ("saturated", r.saturated)):
        if load.get("sent") and load.get("acked") is not None and load["acked"] < load["sent"]:
            out.append(f"{name}: {load['sent'] - load['acked']:,} of {load['sent']:,} readings sent were not acked")
        if load.get("errors"):
            out.append(f"{name}: {load['errors']} error answers or failed connections")
        if load.get("connected") is not None and load["connected"] < devices:
            out.append(f"{name}: only {load['connected']} of {devices} devices connected")
        for live in load.get("lives") or []:
            if load.get("acked") and (live["got"] or 0) < load["acked"]:
                out.append(f"{name}: the dashboard on {live['url']} received {live['got']:,} of {load['acked']:,}")
    if r.cpu is not None and any(r.cpu.ended.values()):
        ended = ", ".join(f"{part} {n} of {r.cpu.processes[part]}" for part, n in r.cpu.ended.items() if n)
        out.append(f"processes that ended during the saturating load (counted to their last 50 ms sample): {ended}")
    if r.server_log:
        out.append(f"servers logged {len(r.server_log)} warning/error line(s), first: {r.server_log[0][:200]}")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path("/proc/self/stat").exists():
        give_up("CPU is read from /proc/<pid>/stat: this benchmark runs on Linux")
    node, npm = find_node()
    try:
        loadgen = prepare_loadgen(args.peers_dir, npm)
    except BenchError as exc:
        give_up(str(exc))
    plan = Plan(args, node, loadgen)
    specs = plan_runs(args)
    say(f"{len(specs)} runs, each on a fresh database, Redis and server")
    runs = [run_one(plan, run) for run in specs]
    summary = summarize(runs, args)
    print(report(runs, summary, args), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(report_json(runs, summary, args, node)))
    return 0 if all(r.ok for r in runs) else 1


def report_json(runs: list[Run], summary: dict[str, Any], args: argparse.Namespace, node: str) -> dict[str, Any]:
    return {
        "benchmark": "pulsewire cluster",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "node": node_version(node),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "config": {k: v for k, v in vars(args).items() if k not in ("peers_dir", "postgres")},
        "summary": summary,
        "runs": [asdict(r) for r in runs],
    }


if __name__ == "__main__":
    sys.exit(main())
