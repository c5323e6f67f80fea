#!/usr/bin/env python3
"""Ingest benchmark: acked readings/s, live latency and memory of a real Pulsewire server.

What is measured
- Throughput (one run per --batch value B): N devices (--devices) connect to the device channel
  `/ws/device` and each keeps up to 8 telemetry batches of B readings un-acked, sending the next
  batch as soon as an ack frees a slot, for --seconds. The figure is *acked readings per second*:
  a reading counts only once the server has acked it, i.e. after its group commit (PROTOCOL.md
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
- Every run starts its own `pulsewire serve` on a free port with a random admin key and a fresh
  temporary data folder, registers devices bench-0 .. bench-<N-1> through `POST /api/devices`,
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
import contextlib
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx

BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / ".work"
DEFAULT_PEERS_DIR = Path(os.environ.get("PULSEWIRE_BENCH_PEERS", Path(__file__).resolve().parent / "peers"))
LOADGEN_FILES = ("load.mjs", "package.json")
MIN_NODE_MAJOR = 18

WINDOW = 8  # un-acked batches per device, as in the peer figures
VALUES_PER_READING = 2  # load.mjs sends {temperature, sent}
TARGET_ACKED_PER_S = {1: 5_000, 20: 50_000}  # batch size -> acked readings/s
TARGET_P99_MS = 50.0
TARGET_RATE = 5_000  # readings/s at which the p99 target applies
KEEP_UP_SHARE = 0.95  # the latency run must ack this share of the paced rate to count

SERVER_START_TIMEOUT_S = 30.0
SERVER_STOP_TIMEOUT_S = 15.0
RSS_SAMPLE_INTERVAL_S = 0.1
LOG_LINES_KEPT = 50
BANNER_PREFIXES = ("Dashboard:", "API docs:", "Live:")


class BenchError(Exception):
    """A run or the set-up failed; the message says what and where to look."""


def say(message: str) -> None:
    """A progress line on stderr (stdout carries only results)."""
    print(message, file=sys.stderr, flush=True)


def give_up(message: str) -> NoReturn:
    """Stop before any run: the set-up is incomplete (exit status 2). Named after the bench that runs."""
    say(f"bench/{Path(sys.argv[0]).name}: {message}")
    raise SystemExit(2)


# Command line


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _batch_size(text: str) -> int:
    value = positive_int(text)
    if value > 1000:
        raise argparse.ArgumentTypeError("at most 1000 readings per batch (PROTOCOL.md section 1)")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
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


# Load generator


def find_node() -> tuple[str, str]:
    """Paths of node and npm, or stop with what to install."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if path is None)
        give_up(
            f"{missing} not found on PATH. The load generator runs on Node.js: install Node.js >= "
            f"{MIN_NODE_MAJOR} with npm (e.g. `apt-get install nodejs npm`, or from https://nodejs.org), "
            "then run this again."
        )
    version = node_version(node)
    found = re.match(r"v?(\d+)", version)
    if found is None or int(found.group(1)) < MIN_NODE_MAJOR:
        give_up(f"Node.js {version or '(unknown version)'} is too old; install Node.js >= {MIN_NODE_MAJOR}.")
    return node, npm


def node_version(node: str) -> str:
    return subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()


def prepare_loadgen(
    peers_dir: Path, npm: str, work_dir: Path = WORK_DIR, files: tuple[str, ...] = LOADGEN_FILES
) -> Path:
    """Copy `files` (load.mjs, package.json, ...) into work_dir and install their packages once; returns load.mjs."""
    work_dir.mkdir(parents=True, exist_ok=True)
    for name in files:
        source, target = peers_dir / name, work_dir / name
        if source.is_file():
            if not target.exists() or source.read_bytes() != target.read_bytes():
                shutil.copyfile(source, target)
        elif not target.exists():
            raise BenchError(
                f"{source} not found: point --peers-dir (or PULSEWIRE_BENCH_PEERS) at the folder "
                f"holding {', '.join(files)}"
            )
    if not packages_installed(work_dir):
        say(f"installing the load generator's packages (npm install in {work_dir})...")
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund"],
            cwd=work_dir,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            shutil.rmtree(work_dir / "node_modules", ignore_errors=True)
            raise BenchError(f"npm install failed in {work_dir} (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return work_dir / "load.mjs"


def packages_installed(work_dir: Path) -> bool:
    """Every dependency in package.json is in node_modules (an interrupted install does not count)."""
    wanted = json.loads((work_dir / "package.json").read_text()).get("dependencies", {})
    return all((work_dir / "node_modules" / name / "package.json").is_file() for name in wanted)


def run_loadgen(
    node: str,
    loadgen: Path,
    url: str,
    devices: int,
    batch: int,
    seconds: float,
    *,
    proto: str = "ws",
    tokens_file: Path | None = None,
    rate: int | None = None,
) -> dict[str, Any]:
    """Run load.mjs once against `url` (ws:// for the device channel, mqtt:// for a broker); its JSON line."""
    command = [
        node,
        str(loadgen),
        "--proto",
        proto,
        "--url",
        url,
        "--devices",
        str(devices),
        "--batch",
        str(batch),
        "--window",
        str(WINDOW),
        "--seconds",
        _number(seconds),
    ]
    if tokens_file is not None:
        command += ["--tokens", str(tokens_file)]
    if rate:
        command += ["--rate", str(rate)]
    try:
        done = subprocess.run(
            command, cwd=loadgen.parent, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"load generator did not finish within {seconds + 60:.0f} s") from exc
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise BenchError(f"load generator failed (exit {done.returncode}):\n{(done.stderr or done.stdout)[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["stderr"] = done.stderr.strip().splitlines()[:LOG_LINES_KEPT]
    return result


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# The server under test


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pulsewire_command() -> list[str]:
    """`pulsewire` from the same environment as this interpreter."""
    script = Path(sys.executable).with_name("pulsewire")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pulsewire"]


class Server:
    """`pulsewire serve` in a subprocess, logging to <data_dir>/server.log."""

    def __init__(self, data_dir: Path, database_url: str | None, flags: list[str]) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.flags = flags
        self.port = free_port()
        self.admin_key = "bench-admin-" + secrets.token_hex(16)
        self.log_path = data_dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        command = [
            *pulsewire_command(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--admin-key",
            self.admin_key,
            "--log-level",
            "warning",
        ]
        if self.database_url:
            command += ["--database-url", self.database_url]
        command += self.flags
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEWIRE_")}
        env["PYTHONFAULTHANDLER"] = "1"  # lets _dump_stacks show where a stuck server is
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        last = "no attempt"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise BenchError(f"server exited with {self.proc.returncode} at start:\n{self.log_tail()}")
            try:
                resp = httpx.get(self.base + "/healthz", timeout=1)
                if resp.status_code == 200:
                    return
                last = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)
        listening = self._listening()
        self._dump_stacks()
        raise BenchError(
            f"server did not answer /healthz within {SERVER_START_TIMEOUT_S:.0f} s (last attempt: {last}; "
            f"port {self.port} listening: {listening}); stacks from SIGABRT and log:\n{self.log_tail(200)}"
        )

    def _listening(self) -> str:
        import psutil

        try:
            conns = psutil.Process(self.pid).net_connections(kind="tcp")
        except psutil.Error as exc:
            return f"unknown ({type(exc).__name__})"
        return "yes" if any(c.status == psutil.CONN_LISTEN and c.laddr.port == self.port for c in conns) else "no"

    def _dump_stacks(self) -> None:
        """SIGABRT a stuck server: its faulthandler (PYTHONFAULTHANDLER=1) logs every thread's stack."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)

    def crashed(self) -> int | None:
        """The exit code if the server is gone."""
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> str:
        """SIGINT, then SIGKILL after a timeout; says how it went."""
        if self.proc is None:
            return "not started"
        if self.proc.poll() is not None:
            return f"had already exited with {self.proc.returncode}"
        self.proc.send_signal(signal.SIGINT)
        try:
            return f"stopped on SIGINT (exit {self.proc.wait(SERVER_STOP_TIMEOUT_S)})"
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return f"did not stop within {SERVER_STOP_TIMEOUT_S:.0f} s of SIGINT; killed"

    def log_lines(self) -> list[str]:
        """What the server logged (warning level and up), without its start-up banner."""
        if not self.log_path.exists():
            return []
        text = self.log_path.read_text(errors="replace")
        return [line for line in text.splitlines() if line.strip() and not line.strip().startswith(BANNER_PREFIXES)]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_lines()[-lines:])

    # HTTP API

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def register(self, device_ids: list[str]) -> list[str]:
        """Register the devices; returns their tokens in the same order."""
        tokens = []
        with httpx.Client(base_url=self.base, headers=self.admin(), timeout=30) as client:
            for device_id in device_ids:
                resp = client.post("/api/devices", json={"id": device_id})
                if resp.status_code != 201:
                    raise BenchError(f"registering {device_id}: HTTP {resp.status_code} {resp.text[:300]}")
                tokens.append(resp.json()["token"])
        return tokens

    def remove(self, device_ids: list[str]) -> None:
        """Remove the devices and their readings (on a shared database); best effort, says what failed."""
        failed = []
        with httpx.Client(base_url=self.base, headers=self.admin(), timeout=120) as client:
            for device_id in device_ids:
                try:
                    resp = client.delete(f"/api/devices/{device_id}", params={"purge": "true"})
                    ok = resp.status_code in (200, 404)
                except httpx.HTTPError:
                    ok = False
                if not ok:
                    failed.append(device_id)
        if failed:
            say(f"  could not remove {len(failed)} bench device(s) from the database, e.g. {failed[0]}")

    def metrics(self) -> dict[str, float]:
        """Prometheus samples from /metrics, labels summed away: {name: value}."""
        resp = httpx.get(self.base + "/metrics", timeout=10)
        resp.raise_for_status()
        samples: dict[str, float] = {}
        for line in resp.text.splitlines():
            if line and not line.startswith("#"):
                name_labels, value = line.rsplit(" ", 1)
                name = name_labels.split("{", 1)[0]
                if not name.endswith("_bucket"):
                    samples[name] = samples.get(name, 0.0) + float(value)
        return samples


def summarize_metrics(samples: dict[str, float]) -> dict[str, float | None]:
    """The server's own count of what it committed, acked and refused during a run."""

    def get(name: str) -> float:
        return samples.get(name, 0.0)

    commits = get("pulsewire_commit_seconds_count")
    return {
        "committed_readings": get("pulsewire_readings_total"),
        "committed_values": get("pulsewire_values_total"),
        "acked_batches": get("pulsewire_acks_total"),
        "rejects": get("pulsewire_rejects_total"),
        "frame_closes": get("pulsewire_frame_closes_total"),
        "auth_refusals": get("pulsewire_auth_refusals_total"),
        "storage_errors": get("pulsewire_storage_errors_total"),
        "live_clients_dropped": get("pulsewire_live_dropped_clients_total"),
        "group_commits": commits,
        "mean_commit_ms": round(1000 * get("pulsewire_commit_seconds_sum") / commits, 2) if commits else None,
        "mean_batches_per_commit": round(get("pulsewire_group_batches_sum") / commits, 1) if commits else None,
    }


# Resource sampling


class ServerSampler:
    """While active: peak RSS of the server (and children) every 100 ms, and its CPU time by thread."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._psutil = psutil
        self._proc = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, name="rss-sampler", daemon=True)
        self.peak_rss = 0
        self.cpu_seconds: float | None = None  # in all
        self.loop_cpu_seconds: float | None = None  # on the main thread, which runs the event loop

    def __enter__(self) -> ServerSampler:
        self._start_cpu = self._cpu_snapshot()
        self._sample_rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        start, end = self._start_cpu, self._cpu_snapshot()
        if start is not None and end is not None:
            main = self._proc.pid
            self.cpu_seconds = end[0] - start[0]
            self.loop_cpu_seconds = end[1].get(main, 0.0) - start[1].get(main, 0.0)

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_INTERVAL_S):
            self._sample_rss()

    def _sample_rss(self) -> None:
        try:
            procs = [self._proc, *self._proc.children(recursive=True)]
            rss = sum(p.memory_info().rss for p in procs)
        except self._psutil.Error:  # the server exited; the caller notices
            return
        self.peak_rss = max(self.peak_rss, rss)

    def _cpu_snapshot(self) -> tuple[float, dict[int, float]] | None:
        """(process CPU seconds, {thread id: CPU seconds})."""
        try:
            times = self._proc.cpu_times()
            threads = {t.id: t.user_time + t.system_time for t in self._proc.threads()}
        except self._psutil.Error:
            return None
        return times.user + times.system, threads


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
        f"{_number(plan.seconds)} s ..."
    )
    result = RunResult(spec.kind, spec.label, spec.batch, plan.devices, spec.rate, plan.seconds, plan.isolation)
    with tempfile.TemporaryDirectory(prefix="pulsewire-bench-") as tmp:
        server = Server(Path(tmp), plan.database_url, plan.server_flags)
        try:
            say("  starting server...")
            server.start()
            drive(server, spec, plan, Path(tmp), result)
            result.ok = True
        except (BenchError, httpx.HTTPError) as exc:
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
    tokens_file.write_text("\n".join(server.register(ids)) + "\n")
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
            server.remove(ids)
    fill_from_load(result, load)
    fill_resources(result, sampler, loadgen_cpu, busy_seconds=float(load.get("seconds") or plan.seconds))
    say(
        f"  acked {result.acked_per_s:,} readings/s, live p50/p99 {result.live_p50_ms}/{result.live_p99_ms} ms, "
        f"peak RSS {result.server_peak_rss_mb} MB"
    )


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
        f"{_number(plan.seconds)} s per run; {plan.isolation}.",
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
