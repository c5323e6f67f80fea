#!/usr/bin/env python3
"""Pulsewire side by side with the servers a user would otherwise pick, on one machine, in one run.

Peers (bench/peers/)
- pulsewire: `pulsewire serve`, default settings, SQLite in a fresh folder. Stores every reading
  and acks a batch only after its group commit, then pushes it to live clients.
- wsrelay: a Node `ws` relay speaking the device channel's hello/telemetry/ack subset and
  broadcasting every batch to /ws/live clients. Stores nothing.
- mosquitto: a private Mosquitto broker on a free port (no persistence); devices publish with
  QoS 1 (the PUBACK is the ack), one subscriber takes every reading (the live client).
- naive: the FastAPI server a tutorial would write: one INSERT and one commit per reading.
- pulsewire@REF, with --baseline-ref REF only: Pulsewire as it was at that git revision (e.g.
  8ff8aef, the release before compact storage), run from a temporary worktree with the same
  interpreter and packages, right after `pulsewire` in every round, so the two are compared in the
  same minutes. Off by default: it adds a quarter to the run and needs a git checkout.

Workload (the same load generator, bench/peers/load.mjs, for all): 100 devices, each keeping up
to 8 batches un-acked.
- batch 1 and batch 20: as fast as acks allow; the figure is acked readings/s. "Delivered" is
  what the live client received per second.
- latency: batch 1 paced at 5,000 readings/s in all; p50/p99 ms from each reading's send time to
  its arrival at the live client.
- RSS: the server's peak resident memory over its three runs (with its child processes).
- With --repeat N, all of that N times over, peer after peer each time, so that noise lasting
  minutes hits every peer alike; the table shows medians (with an even N the less flattering
  middle one) and the JSON every run.

Every run starts its peer afresh. Ratios are to Mosquitto (x1.00 = same as Mosquitto); with a
baseline peer, Pulsewire's figures are also given as ratios to the baseline's.

Targets (issue, 2-core machine, SQLite, same run): Pulsewire acked readings/s at batch 20 >=
Mosquitto's delivered readings/s at batch 20; at batch 1 >= half of Mosquitto's; live p99 at
5,000 readings/s <= 2x Mosquitto's; batch 1 >= 50x the naive server.

This is a benchmark, not a test: run it by hand (bench/peers.py --help).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.cli import LOG_LINES_KEPT, BenchError, give_up, positive_float, positive_int, say
from harness.loadgen import (
    DEFAULT_PEERS_DIR,
    LOADGEN_FILES,
    TARGET_RATE,
    find_node,
    node_version,
    prepare_loadgen,
    run_loadgen,
)
from harness.paths import WORK_DIR
from harness.revision import Revision, checkout, revision_server
from harness.sampler import ServerSampler
from harness.server import RUN_FAILURES, bench_server, free_port, summarize_metrics

PEER_FILES = (*LOADGEN_FILES, "wsrelay.mjs", "naive_fastapi.py")
PEERS = ("pulsewire", "wsrelay", "mosquitto", "naive")
LABELS = {
    "pulsewire": "Pulsewire (SQLite)",
    "wsrelay": "Node ws relay",
    "mosquitto": "Mosquitto QoS 1",
    "naive": "plain FastAPI",
}
STORES = {"pulsewire": "stores", "wsrelay": "relays", "mosquitto": "relays", "naive": "stores"}
BASELINE = "mosquitto"
REVISION_PEER = "pulsewire@"  # + the git ref: Pulsewire at another revision (--baseline-ref)
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
KEEP_UP_SHARE = 0.95  # the latency run must ack this share of the paced rate to count

# (name, run key, how Pulsewire's figure compares with the baseline's) -> target
BATCH20_OVER_DELIVERED = 1.0
BATCH1_OVER_DELIVERED = 0.5
P99_OVER = 2.0
BATCH1_OVER_NAIVE = 50.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/peers.py",
        description="Run the same device workload against Pulsewire, a Node ws relay, Mosquitto (QoS 1) and a "
        "plain FastAPI server, one after another on this machine, and print acked readings/s at batch 1 and 20, "
        "live latency at a paced rate and server memory, each as a ratio to Mosquitto. Needs Node.js >= 18 with "
        "npm, and the mosquitto binary (Debian package mosquitto).",
        epilog="Example: .venv/bin/python bench/peers.py (about 3 minutes). "
        "Progress goes to stderr; the table to stdout (to stderr with --json, so stdout is pure JSON).",
    )
    parser.add_argument("--devices", type=positive_int, default=100, help="simulated devices (default: 100)")
    parser.add_argument("--seconds", type=positive_float, default=10.0, help="seconds of load per run (default: 10)")
    parser.add_argument(
        "--rate",
        type=positive_int,
        default=TARGET_RATE,
        help=f"readings/s in all for the latency run (default: {TARGET_RATE})",
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        help="run everything this many times, peer after peer each time, and report medians (default: 1)",
    )
    parser.add_argument(
        "--peer",
        choices=PEERS,
        nargs="+",
        default=list(PEERS),
        help="peers to run, in this order (default: all; ratios need mosquitto)",
    )
    parser.add_argument(
        "--server-flag",
        action="append",
        default=[],
        metavar="FLAG",
        help="extra flag for `pulsewire serve`, repeatable, e.g. --server-flag=--workers=2",
    )
    parser.add_argument(
        "--peers-dir",
        type=Path,
        default=DEFAULT_PEERS_DIR,
        help=f"folder holding the peers and load generator (default: {DEFAULT_PEERS_DIR})",
    )
    parser.add_argument(
        "--baseline-ref",
        default=None,
        metavar="REF",
        help="also run Pulsewire as it was at this git revision (peer pulsewire@REF, right after pulsewire), "
        "e.g. 8ff8aef, the release before compact storage (default: off)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout (table to stderr)")
    return parser.parse_args(argv)


def label_of(peer: str) -> str:
    if peer.startswith(REVISION_PEER):
        return f"Pulsewire@{peer.removeprefix(REVISION_PEER)} (SQLite)"
    return LABELS[peer]


def stores_of(peer: str) -> str:
    return STORES["pulsewire" if peer.startswith(REVISION_PEER) else peer]


# Peers under test


@dataclass
class Running:
    """A peer that is up: where the load goes and which process to watch."""

    url: str
    proto: str
    pid: int
    tokens_file: Path | None = None
    log: Callable[[], list[str]] = list
    metrics: Callable[[], dict[str, float | None]] = dict


def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode} at start:\n{_tail(log_path)}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise BenchError(f"{what} did not listen on port {port} within {START_TIMEOUT_S:.0f} s:\n{_tail(log_path)}")


def _tail(log_path: Path, lines: int = 40) -> str:
    if not log_path.exists():
        return "(no output)"
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after a timeout."""
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def spawn(command: list[str], what: str, port: int, tmp: Path, **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    log_path = tmp / f"{what}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **popen)
    try:
        wait_listening(port, proc, what, log_path)
        yield proc
    finally:
        if proc.poll() is None:
            stop_process(proc)


@contextlib.contextmanager
def start_pulsewire(ctx: Context, tmp: Path, revision: Revision | None = None) -> Iterator[Running]:
    """This checkout's server, or `revision`'s (the baseline peer)."""
    server = (
        bench_server(tmp, None, ctx.server_flags)
        if revision is None
        else revision_server(revision, tmp, ctx.server_flags)
    )
    try:
        server.start()
        tokens = tmp / "tokens.txt"
        tokens.write_text("\n".join(server.register_many([f"bench-{i}" for i in range(ctx.devices)])) + "\n")
        yield Running(
            f"ws://127.0.0.1:{server.port}",
            "ws",
            server.pid,
            tokens,
            log=lambda: server.log_lines()[:LOG_LINES_KEPT],
            metrics=lambda: summarize_metrics(server.metrics()),
        )
    finally:
        server.stop()


@contextlib.contextmanager
def start_wsrelay(ctx: Context, tmp: Path) -> Iterator[Running]:
    port = free_port()
    with spawn([ctx.node, "wsrelay.mjs", str(port)], "wsrelay", port, tmp, cwd=ctx.work_dir) as proc:
        yield Running(f"ws://127.0.0.1:{port}", "ws", proc.pid)


@contextlib.contextmanager
def start_mosquitto(ctx: Context, tmp: Path) -> Iterator[Running]:
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_type error\n")
    with spawn([ctx.mosquitto, "-c", str(conf)], "mosquitto", port, tmp) as proc:
        yield Running(f"mqtt://127.0.0.1:{port}", "mqtt", proc.pid)


@contextlib.contextmanager
def start_naive(ctx: Context, tmp: Path) -> Iterator[Running]:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "naive_fastapi:app", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--log-level", "warning"]
    env = {**os.environ, "NAIVE_PEER_DB": str(tmp / "naive.db")}
    with spawn(command, "naive", port, tmp, cwd=ctx.work_dir, env=env) as proc:
        yield Running(f"ws://127.0.0.1:{port}", "ws", proc.pid)


STARTERS = {
    "pulsewire": start_pulsewire,
    "wsrelay": start_wsrelay,
    "mosquitto": start_mosquitto,
    "naive": start_naive,
}


# Runs


@dataclass(frozen=True)
class Context:
    devices: int
    seconds: float
    rate: int
    node: str
    mosquitto: str
    loadgen: Path
    work_dir: Path
    server_flags: list[str]
    baseline: Revision | None = None  # the pulsewire@REF peer's tree


def starter(peer: str, ctx: Context) -> Callable[[Context, Path], contextlib.AbstractContextManager[Running]]:
    if peer.startswith(REVISION_PEER):
        assert ctx.baseline is not None
        return functools.partial(start_pulsewire, revision=ctx.baseline)
    return STARTERS[peer]


@dataclass
class Run:
    """One load run against one peer."""

    key: str  # "batch1", "batch20" or "latency"
    batch: int
    rate: int | None
    ok: bool = False
    failure: str | None = None
    sent: int | None = None
    acked: int | None = None
    acked_per_s: int | None = None
    delivered_per_s: int | None = None
    live_got: int | None = None
    live_p50_ms: float | None = None
    live_p99_ms: float | None = None
    errors: int | None = None
    connected: int | None = None
    peak_rss_mb: float | None = None
    server_metrics: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class PeerResult:
    peer: str
    runs: dict[str, list[Run]] = field(default_factory=dict)  # run key -> one Run per repeat

    def figure(self, key: str, attr: str) -> float | None:
        """The median over the repeats that worked; with an even count, the less flattering middle one."""
        values = sorted(getattr(r, attr) for r in self.runs.get(key, ()) if r.ok and getattr(r, attr) is not None)
        if not values:
            return None
        lower_is_better = attr.startswith("live_")  # latency; the rest are rates
        return values[len(values) // 2] if lower_is_better else values[(len(values) - 1) // 2]

    def all_runs(self) -> list[Run]:
        return [run for runs in self.runs.values() for run in runs]

    @property
    def peak_rss_mb(self) -> float | None:
        values = [r.peak_rss_mb for r in self.all_runs() if r.ok and r.peak_rss_mb is not None]
        return max(values) if values else None


def run_specs(rate: int) -> list[tuple[str, int, int | None]]:
    return [("batch1", 1, None), ("batch20", 20, None), ("latency", 1, rate)]


def run_all(peers: list[str], ctx: Context, repeats: int) -> dict[str, PeerResult]:
    """Every peer's three runs, then again for each repeat: noise that lasts minutes hits all peers alike."""
    results = {peer: PeerResult(peer) for peer in peers}
    for repeat in range(1, repeats + 1):
        for number, peer in enumerate(peers, 1):
            for key, batch, rate in run_specs(ctx.rate):
                pace = f"paced at {rate:,} readings/s" if rate else "as fast as acks allow"
                round_ = f" (repeat {repeat}/{repeats})" if repeats > 1 else ""
                say(
                    f"[{number}/{len(peers)}] {label_of(peer)}: batch {batch}, {pace}, {ctx.devices} devices, "
                    f"{ctx.seconds:g} s{round_} ..."
                )
                results[peer].runs.setdefault(key, []).append(run_once(peer, ctx, key, batch, rate))
    return results


def run_once(peer: str, ctx: Context, key: str, batch: int, rate: int | None) -> Run:
    run = Run(key, batch, rate)
    with tempfile.TemporaryDirectory(prefix=f"pulsewire-peer-{peer}-") as tmp:
        try:
            with starter(peer, ctx)(ctx, Path(tmp)) as running:
                drive(running, ctx, run)
                run.ok = True
                for line in running.log():
                    run.notes.append(f"server log: {line[:200]}")
        except RUN_FAILURES as exc:
            run.failure = str(exc) or type(exc).__name__
            say("  run failed: " + run.failure.replace("\n", "\n    "))
    add_notes(run, ctx)
    if run.ok:
        say(
            f"  acked {run.acked_per_s:,}/s, delivered {run.delivered_per_s:,}/s, live p50/p99 "
            f"{run.live_p50_ms}/{run.live_p99_ms} ms, peak RSS {run.peak_rss_mb} MB"
        )
    return run


def drive(running: Running, ctx: Context, run: Run) -> None:
    with ServerSampler(running.pid) as sampler:
        load = run_loadgen(
            ctx.node,
            ctx.loadgen,
            running.url,
            ctx.devices,
            run.batch,
            ctx.seconds,
            proto=running.proto,
            tokens_file=running.tokens_file,
            rate=run.rate,
        )
    run.server_metrics = running.metrics()
    for key in ("sent", "acked", "acked_per_s", "errors", "connected", "live_got", "live_p50_ms", "live_p99_ms"):
        setattr(run, key, load.get(key))
    run.delivered_per_s = round((run.live_got or 0) / ctx.seconds)
    run.peak_rss_mb = round(sampler.peak_rss / 2**20, 1)


def add_notes(run: Run, ctx: Context) -> None:
    if not run.ok:
        return
    if run.connected is not None and run.connected < ctx.devices:
        run.notes.append(f"only {run.connected} of {ctx.devices} devices connected")
    if run.errors:
        run.notes.append(f"{run.errors} errors (error answers or failed connections)")
    if run.sent and run.acked is not None and run.acked < run.sent:
        run.notes.append(f"{run.sent - run.acked:,} of {run.sent:,} readings sent were not acked within the drain")
    if run.live_got is not None and run.acked and run.live_got < run.acked:
        run.notes.append(f"live client received {run.live_got:,} of {run.acked:,} acked readings")
    if run.rate and (run.acked_per_s or 0) < KEEP_UP_SHARE * run.rate:
        run.notes.append(f"did not keep up with the paced {run.rate:,} readings/s (acked {run.acked_per_s:,}/s)")


# Report


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


def targets(results: dict[str, PeerResult], rate: int) -> list[dict[str, Any]]:
    """The issue's four comparisons, each with both figures and whether Pulsewire met it."""
    pw, mq, naive = results.get("pulsewire"), results.get(BASELINE), results.get("naive")
    out: list[dict[str, Any]] = []

    def add(name: str, ours: float | None, theirs: float | None, factor: float, higher_is_better: bool) -> None:
        goal = None if theirs is None else theirs * factor
        met = None
        if ours is not None and goal is not None:
            met = ours >= goal if higher_is_better else ours <= goal
        out.append({"target": name, "pulsewire": ours, "goal": goal, "met": met})

    if pw and mq:
        add(
            "batch 20: acked readings/s >= Mosquitto's delivered readings/s",
            pw.figure("batch20", "acked_per_s"),
            mq.figure("batch20", "delivered_per_s"),
            BATCH20_OVER_DELIVERED,
            True,
        )
        add(
            "batch 1: acked readings/s >= half of Mosquitto's delivered readings/s",
            pw.figure("batch1", "acked_per_s"),
            mq.figure("batch1", "delivered_per_s"),
            BATCH1_OVER_DELIVERED,
            True,
        )
        kept_up = (pw.figure("latency", "acked_per_s") or 0) >= KEEP_UP_SHARE * rate
        add(
            f"live p99 at {rate:,} readings/s <= 2x Mosquitto's",
            pw.figure("latency", "live_p99_ms") if kept_up else None,
            mq.figure("latency", "live_p99_ms"),
            P99_OVER,
            False,
        )
    if pw and naive:
        add(
            "batch 1: acked readings/s >= 50x plain FastAPI's",
            pw.figure("batch1", "acked_per_s"),
            naive.figure("batch1", "acked_per_s"),
            BATCH1_OVER_NAIVE,
            True,
        )
    return out


def format_table(results: dict[str, PeerResult], rate: int) -> str:
    base = results.get(BASELINE)
    rows = [table_header(rate), *(table_row(r, base) for r in results.values())]
    lines = [*aligned(rows), "", *table_footer(results, rate)]
    return "\n".join(line.rstrip() for line in lines)


def table_header(rate: int) -> tuple[str, ...]:
    return (
        "peer",
        "",
        "batch 1 acked/s",
        "vs M",
        "batch 20 acked/s",
        "vs M",
        "b20 delivered/s",
        f"p50 ms @{rate:,}/s",
        f"p99 ms @{rate:,}/s",
        "vs M",
        "peak RSS MB",
        "vs M",
    )


def table_row(r: PeerResult, base: PeerResult | None) -> tuple[str, ...]:
    """One peer's medians, each ratio to the baseline's after its figure."""

    def cell(key: str, attr: str, spec: str) -> str:
        return _fmt(r.figure(key, attr), spec)

    def times(key: str, attr: str) -> str:
        return _times(ratio(r.figure(key, attr), base.figure(key, attr) if base else None))

    return (
        label_of(r.peer),
        stores_of(r.peer),
        cell("batch1", "acked_per_s", ","),
        times("batch1", "acked_per_s"),
        cell("batch20", "acked_per_s", ","),
        times("batch20", "acked_per_s"),
        cell("batch20", "delivered_per_s", ","),
        cell("latency", "live_p50_ms", ".1f"),
        cell("latency", "live_p99_ms", ".1f"),
        times("latency", "live_p99_ms"),
        _fmt(r.peak_rss_mb, ".0f"),
        _times(ratio(r.peak_rss_mb, base.peak_rss_mb if base else None)),
    )


def _times(got: float | None) -> str:
    return "-" if got is None else f"x{got:.2f}"


def aligned(rows: list[tuple[str, ...]]) -> list[str]:
    """The rows in columns, names left and figures right, a rule under the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def table_footer(results: dict[str, PeerResult], rate: int) -> list[str]:
    """How many runs the medians are of, the targets met or not, and every run's notes."""
    lines = []
    repeats = max((len(runs) for r in results.values() for runs in r.runs.values()), default=1)
    if repeats > 1:
        lines.append(f"Medians of {repeats} runs each.")
    lines.append("vs M: ratio to Mosquitto. Targets for Pulsewire:")
    for t in targets(results, rate):
        mark = {True: "met", False: "SHORT", None: "not measured"}[t["met"]]
        lines.append(f"  {mark:>12}  {t['target']}: {_fmt(t['pulsewire'], ',.1f')} (goal {_fmt(t['goal'], ',.1f')})")
    for v in versus_baseline(results):
        lines.append(
            f"Pulsewire / {label_of(v['baseline'])}, {v['figure']}: {_times(v['ratio'])} "
            f"({_fmt(v['pulsewire'], ',.1f')} vs {_fmt(v['before'], ',.1f')})"
        )
    notes = [(r.peer, run) for r in results.values() for run in r.all_runs() if run.notes or run.failure]
    if notes:
        lines.append("")
        lines.append("Notes:")
        for peer, run in notes:
            for note in ([f"FAILED: {run.failure.splitlines()[0]}"] if run.failure else []) + run.notes:
                lines.append(f"  {label_of(peer)}, {run.key}: {note}")
    return lines


def _fmt(value: float | int | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def versus_baseline(results: dict[str, PeerResult]) -> list[dict[str, Any]]:
    """Pulsewire's medians over the baseline revision's (the pulsewire@REF peer), when both ran."""
    pw = results.get("pulsewire")
    before = next((r for name, r in results.items() if name.startswith(REVISION_PEER)), None)
    if pw is None or before is None:
        return []
    figures = [
        ("batch 1 acked/s", "batch1", "acked_per_s"),
        ("batch 20 acked/s", "batch20", "acked_per_s"),
        ("live p99 ms", "latency", "live_p99_ms"),
    ]
    out = []
    for text, key, attr in figures:
        ours, theirs = pw.figure(key, attr), before.figure(key, attr)
        out.append(
            {"baseline": before.peer, "figure": text, "pulsewire": ours, "before": theirs, "ratio": ratio(ours, theirs)}
        )
    return out


def report_json(results: dict[str, PeerResult], ctx: Context) -> dict[str, Any]:
    return {
        "benchmark": "pulsewire peers",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "node": node_version(ctx.node),
        },
        "config": {"devices": ctx.devices, "seconds": ctx.seconds, "rate": ctx.rate, "server_flags": ctx.server_flags},
        "peers": {
            name: {
                "label": label_of(name),
                "peak_rss_mb": r.peak_rss_mb,
                "runs": {k: [asdict(run) for run in runs] for k, runs in r.runs.items()},
                "medians": {
                    k: {a: r.figure(k, a) for a in ("acked_per_s", "delivered_per_s", "live_p50_ms", "live_p99_ms")}
                    for k in r.runs
                },
            }
            for name, r in results.items()
        },
        "targets": targets(results, ctx.rate),
        "versus_baseline": versus_baseline(results),
        "baseline_commit": ctx.baseline.commit if ctx.baseline else None,
    }


def find_mosquitto() -> str:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )
    if found is None:
        give_up("mosquitto not found: install it (e.g. `apt-get install mosquitto`) and run this again.")
    return found


def with_baseline_peer(peers: list[str], ref: str | None) -> list[str]:
    """The baseline revision's peer right after pulsewire (first when pulsewire is not run)."""
    if not ref:
        return peers
    at = peers.index("pulsewire") + 1 if "pulsewire" in peers else 0
    return [*peers[:at], REVISION_PEER + ref, *peers[at:]]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    node, npm = find_node()
    mosquitto = find_mosquitto() if "mosquitto" in args.peer else ""
    work_dir = WORK_DIR / "peers"
    try:
        loadgen = prepare_loadgen(args.peers_dir, npm, work_dir, PEER_FILES)
    except BenchError as exc:
        give_up(str(exc))
    ctx = Context(args.devices, args.seconds, args.rate, node, mosquitto, loadgen, work_dir, args.server_flag)
    peers = with_baseline_peer(list(dict.fromkeys(args.peer)), args.baseline_ref)
    say(f"{len(peers)} peers x 3 runs x {args.repeat} of {args.seconds:g} s each, every run on a freshly started peer")
    with contextlib.ExitStack() as stack:
        if args.baseline_ref:
            try:
                baseline = stack.enter_context(checkout(args.baseline_ref))
            except BenchError as exc:
                give_up(str(exc))
            ctx = dataclasses.replace(ctx, baseline=baseline)
            say(f"{REVISION_PEER}{args.baseline_ref}: commit {baseline.commit[:12]}, from {baseline.tree}")
        results = run_all(peers, ctx, args.repeat)
    table = format_table(results, ctx.rate)
    if args.json:
        print(table, file=sys.stderr)
        print(json.dumps(report_json(results, ctx)))
    else:
        print(table)
    return 0 if all(run.ok for r in results.values() for run in r.all_runs()) else 1


if __name__ == "__main__":
    sys.exit(main())
