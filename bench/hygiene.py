#!/usr/bin/env python3
"""Connection hygiene benchmark: idle and half-done connections held against a real server.

What is measured
- Attackers (a process of their own) hold --half-open TCP connections that sent part of an upgrade
  request (the blank line that ends the head never comes) and --helloless device WebSockets that
  completed the handshake with a valid token but never say `hello`. Each attacker slot reconnects
  as soon as the server closes it (after --retry-delay when it was refused), for --seconds, from
  --sources loopback addresses (127.0.0.2, 127.0.0.3, ...), so the per-address caps do not simply
  refuse them all and the deadlines are what is measured.
- For each kind: connections the server accepted, how long each lived until the server closed it
  (median and max; the handshake deadline for half-open ones, the hello deadline for hello-less
  ones, both 10 s by default), how many it refused (HTTP 503), and how many were still open at the end.
- The server's open files and RSS, sampled every --sample-every seconds (min, median, max, and a
  line every 5 s).
- A real device meanwhile, from 127.0.0.1: one connection that sends a one-reading batch every
  100 ms (ack latency p50/p99/max), and a second device that connects, says hello and closes once
  a second (connect time: TCP, upgrade, hello, welcome; retried after a 503, the retries included).
- The same again with the server's open-file limit at --open-files-limit (1,024 by default; 0 skips
  it), started under `prlimit`.

How: every phase starts its own `pulsewire serve` (tests/support/server.py through bench/harness, on a
free port, fresh SQLite data folder, default settings unless --server-flag). The benchmark raises its
own RLIMIT_NOFILE to the hard limit; the attacker process inherits it.

This is a benchmark, not a test: run it by hand (bench/hygiene.py --help). Timings are noisy on a
shared 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness.cli import BenchError, give_up, positive_float, positive_int, say
from harness.devices import open_device, raise_open_files_limit
from harness.server import Server, bench_server
from pulsewire.protocol.device import SUBPROTOCOL

PARTIAL_HEAD = b"GET /ws/device HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
FW = "bench-hygiene"  # the firmware version its real device says hello with
HELLOLESS_DEVICES = 20  # tokens the hello-less connections take turns with
PROBE_BATCH_EVERY_S = 0.1
PROBE_CONNECT_EVERY_S = 1.0
PROBE_RETRY_S = 0.2
OPEN_FILES_MARGIN = 512
TIMELINE_EVERY_S = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/hygiene.py",
        description="Hold half-open connections and hello-less device WebSockets against a real Pulsewire "
        "server; report how long until the server closes each kind, its open files and RSS, and a real "
        "device's connect time and ack latency meanwhile; then the same with the server's open-file limit lowered.",
        epilog="Example: .venv/bin/python bench/hygiene.py --half-open 3000 --helloless 1000 --seconds 40. "
        "Progress goes to stderr, the results to stdout (to stderr with --json, so stdout is pure JSON). "
        "Exit status: 0 if every phase ran, 1 if one failed, 2 if the set-up is impossible.",
    )
    parser.add_argument("--half-open", type=int, default=3000, help="half-open connections to hold (default: 3000)")
    parser.add_argument("--helloless", type=int, default=1000, help="hello-less WebSockets to hold (default: 1000)")
    parser.add_argument(
        "--seconds", type=positive_float, default=40.0, help="seconds the attack lasts per phase (default: 40)"
    )
    parser.add_argument(
        "--sources", type=positive_int, default=16, help="loopback source addresses of the attackers (default: 16)"
    )
    parser.add_argument(
        "--retry-delay",
        type=positive_float,
        default=0.5,
        help="seconds an attacker slot waits after a refusal before it tries again (default: 0.5)",
    )
    parser.add_argument(
        "--open-files-limit",
        type=int,
        default=1024,
        help="the server's open-file limit in the second phase; 0: no second phase (default: 1024)",
    )
    parser.add_argument(
        "--sample-every", type=positive_float, default=0.5, help="seconds between server samples (default: 0.5)"
    )
    parser.add_argument(
        "--server-flag",
        action="append",
        default=[],
        metavar="FLAG",
        help="extra flag for every `pulsewire serve`, repeatable, e.g. --server-flag=--handshake-timeout-s=2",
    )
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object on stdout")
    return parser.parse_args(argv)


# --- figures --------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def spread(values: list[float], scale: float = 1.0, digits: int = 1) -> dict[str, float | None]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v * scale, digits)

    return {
        "count": len(values),
        "median": r(statistics.median(values)) if values else None,
        "p99": r(percentile(values, 99)),
        "max": r(max(values)) if values else None,
    }


# --- the attackers (a process of their own) -------------------------------------------------------


def attack_process(port: int, tokens: list[str], args: dict[str, Any], started: Any, results: Any) -> None:
    try:
        results.put(asyncio.run(_attack(port, tokens, args, started)))
    except BaseException as exc:  # noqa: BLE001  (anything goes back to the parent as text)
        results.put({"error": f"{type(exc).__name__}: {exc}"})


def _new_kind() -> dict[str, Any]:
    return {"accepted": 0, "lifetimes": [], "refused": 0, "other_answers": 0, "errors": 0, "open_at_end": 0}


async def _attack(port: int, tokens: list[str], args: dict[str, Any], started: Any) -> dict[str, Any]:
    sources = [f"127.0.0.{2 + i}" for i in range(args["sources"])]
    stop_at = time.monotonic() + args["seconds"]
    kinds = {"half_open": _new_kind(), "helloless": _new_kind()}
    close_codes: dict[str, int] = {}

    async def slot(kind: str, number: int) -> None:
        record = kinds[kind]
        while time.monotonic() < stop_at:
            source = sources[number % len(sources)]
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
            except OSError:
                record["errors"] += 1
                await asyncio.sleep(args["retry_delay"])
                continue
            try:
                outcome = await _hold(kind, reader, writer, tokens[number % len(tokens)], stop_at, close_codes)
            except (OSError, asyncio.IncompleteReadError):
                outcome = "error"
            finally:
                writer.close()
            if isinstance(outcome, float):
                record["accepted"] += 1
                record["lifetimes"].append(outcome)
            elif outcome == "open":
                record["accepted"] += 1
                record["open_at_end"] += 1
            else:
                record[{"refused": "refused", "error": "errors"}.get(outcome, "other_answers")] += 1
                await asyncio.sleep(args["retry_delay"])

    tasks = [asyncio.create_task(slot("half_open", i)) for i in range(args["half_open"])]
    tasks += [asyncio.create_task(slot("helloless", i)) for i in range(args["helloless"])]
    started.set()
    await asyncio.gather(*tasks)
    return {"kinds": kinds, "close_codes": close_codes}


async def _hold(
    kind: str, reader: Any, writer: Any, token: str, stop_at: float, close_codes: dict[str, int]
) -> float | str:
    """One connection: its lifetime until the server closed it, or "open", "refused", "answered", "error"."""
    opened = time.monotonic()
    if kind == "half_open":
        writer.write(PARTIAL_HEAD)
        answer = await _read_until_eof(reader, stop_at)
        if answer is None:
            return "open"
        if answer.startswith(b"HTTP/1.1 503"):
            return "refused"
        return time.monotonic() - opened  # closed silently or after 408
    writer.write(_upgrade(token))
    head = await _wait(reader.readuntil(b"\r\n\r\n"), stop_at)
    if head is None:
        return "open"
    if head.startswith(b"HTTP/1.1 503"):
        return "refused"
    if not head.startswith(b"HTTP/1.1 101"):
        return "answered"
    while True:  # frames until the server's close (pings skipped)
        first = await _wait(reader.readexactly(2), stop_at)
        if first is None:
            return "open"
        length = first[1] & 0x7F
        payload = await reader.readexactly(length) if length < 126 else b""
        if first[0] & 0x0F == 0x8:
            code = str(int.from_bytes(payload[:2], "big")) if len(payload) >= 2 else "none"
            close_codes[code] = close_codes.get(code, 0) + 1
            return time.monotonic() - opened


async def _wait(awaitable: Any, stop_at: float) -> Any:
    try:
        return await asyncio.wait_for(awaitable, max(0.01, stop_at - time.monotonic()))
    except TimeoutError:
        return None


async def _read_until_eof(reader: Any, stop_at: float) -> bytes | None:
    return await _wait(reader.read(), stop_at)  # type: ignore[no-any-return]


def _upgrade(token: str) -> bytes:
    return (
        "GET /ws/device HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()


# --- the real device (this process) ---------------------------------------------------------------


async def _connect_retrying(url: str, token: str) -> tuple[Any, int]:
    """Connect as a device, again after each 503 (the server's answer over a cap); (connection, refusals)."""
    from websockets.exceptions import InvalidStatus

    refusals = 0
    while True:
        try:
            return await open_device(url, token, FW, ping_interval=None), refusals
        except InvalidStatus as exc:
            if exc.response.status_code != 503:
                raise
            refusals += 1
            await asyncio.sleep(PROBE_RETRY_S)


async def probe(url: str, steady_token: str, connect_token: str, stop: asyncio.Event) -> dict[str, Any]:
    """A steady device's ack latency and a reconnecting device's connect time until `stop`."""
    acks: list[float] = []
    connects: list[float] = []
    counts = {"connect_refusals": 0, "failures": 0}
    steady, _ = await _connect_retrying(url, steady_token)

    async def send_batches() -> None:
        seq = 0
        while not stop.is_set():
            seq += 1
            batch = {"type": "telemetry", "seq": seq, "data": [{"ts": int(time.time() * 1000), "values": {"v": seq}}]}
            sent = time.monotonic()
            await steady.send(json.dumps(batch))
            answer = json.loads(await asyncio.wait_for(steady.recv(), 30))
            if answer.get("type") != "ack":
                raise BenchError(f"expected an ack, got {answer}")
            acks.append(time.monotonic() - sent)
            await asyncio.sleep(PROBE_BATCH_EVERY_S)

    async def reconnect() -> None:
        while not stop.is_set():
            begun = time.monotonic()
            try:
                ws, refused = await _connect_retrying(url, connect_token)
                connects.append(time.monotonic() - begun)
                counts["connect_refusals"] += refused
                await ws.close()
            except Exception:  # noqa: BLE001  (counted: the figure is how often a device got in)
                counts["failures"] += 1
            await asyncio.sleep(max(0.0, PROBE_CONNECT_EVERY_S - (time.monotonic() - begun)))

    try:
        await asyncio.gather(send_batches(), reconnect())
    finally:
        await steady.close()
    return {
        "ack_ms": spread(acks, 1000),
        "connect_ms": spread(connects, 1000),
        **counts,
    }


# --- the server's resources -----------------------------------------------------------------------


class Sampler:
    """The server's open files and RSS every `every` seconds, on a thread."""

    def __init__(self, pid: int, every: float) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.every = every
        self.samples: list[tuple[float, int, int]] = []  # (seconds since start, open files, RSS bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = time.monotonic()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.samples.append(
                    (time.monotonic() - self._start, self.process.num_fds(), self.process.memory_info().rss)
                )
            self._stop.wait(self.every)

    def summary(self) -> dict[str, Any]:
        files = [s[1] for s in self.samples]
        rss = [s[2] / 2**20 for s in self.samples]
        timeline = []
        for t, f, r in self.samples:
            if not timeline or t - timeline[-1]["s"] >= TIMELINE_EVERY_S:
                timeline.append({"s": round(t, 1), "open_files": f, "rss_mb": round(r / 2**20, 1)})
        return {
            "open_files": {"min": min(files), "median": statistics.median(files), "max": max(files)} if files else {},
            "rss_mb": {"min": round(min(rss), 1), "max": round(max(rss), 1)} if rss else {},
            "timeline": timeline,
        }


# --- one phase ------------------------------------------------------------------------------------


def run_phase(args: argparse.Namespace, open_files_limit: int | None) -> dict[str, Any]:
    label = f"open-file limit {open_files_limit:,}" if open_files_limit else "open-file limit raised to the hard limit"
    say(f"phase: {label}")
    with tempfile.TemporaryDirectory(prefix="pulsewire-bench-hygiene-") as tmp:
        server = bench_server(Path(tmp), flags=args.server_flag)
        if open_files_limit:
            server.command_prefix = ["prlimit", f"--nofile={open_files_limit}:{open_files_limit}", "--"]
        server.start()
        try:
            return {"phase": label, **_attack_and_probe(args, server)}
        finally:
            server.stop()


def _attack_and_probe(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    ids = [f"hygiene-{i}" for i in range(HELLOLESS_DEVICES + 2)]
    tokens = server.register_many(ids)
    steady, connecting, helloless = tokens[0], tokens[1], tokens[2:]
    ctx = mp.get_context("spawn")
    started, results = ctx.Event(), ctx.Queue()
    settings = {k: getattr(args, k) for k in ("half_open", "helloless", "sources", "seconds", "retry_delay")}
    attackers = ctx.Process(target=attack_process, args=(server.port, helloless, settings, started, results))
    url = server.ws_base + "/ws/device"

    async def measure() -> dict[str, Any]:
        stop = asyncio.Event()
        with Sampler(server.pid, args.sample_every) as sampler:
            prober = asyncio.create_task(probe(url, steady, connecting, stop))
            await asyncio.sleep(1)  # the steady device is in before the attack
            attackers.start()
            while not started.is_set():
                await asyncio.sleep(0.05)
            say(f"  attack started: {args.half_open:,} half-open, {args.helloless:,} hello-less, {args.seconds:g} s")
            await asyncio.sleep(args.seconds)
            stop.set()
            device = await prober
        return {"device": device, "server": sampler.summary()}

    figures = asyncio.run(measure())
    attack = _attack_results(attackers, results, args.seconds)
    metrics = server.metrics()
    wanted = ("pulsewire_handshake_timeouts_total", "pulsewire_hello_timeouts_total")
    wanted += ("pulsewire_connections_refused_total", "pulsewire_connection_limit")
    log_lines = server.log_lines()
    return {
        **figures,
        "attack": attack,
        "metrics": {name: metrics.get(name, 0.0) for name in wanted},
        "server_log_lines": len(log_lines),
        "server_log_errors": [line for line in log_lines if " error " in line][:5],
    }


def _attack_results(attackers: Any, results: Any, seconds: float) -> dict[str, Any]:
    try:
        raw = results.get(timeout=seconds + 60)
    except queue.Empty:
        raw = {"error": "the attacker process sent no results"}
    attackers.join(30)
    if attackers.is_alive():
        attackers.kill()
    if "error" in raw:
        raise BenchError(raw["error"])
    out: dict[str, Any] = {"close_codes": raw["close_codes"]}
    for kind, record in raw["kinds"].items():
        out[kind] = {
            **{k: v for k, v in record.items() if k != "lifetimes"},
            "closed_after_s": spread(record["lifetimes"]),
        }
    return out


# --- report ---------------------------------------------------------------------------------------


def report(phases: list[dict[str, Any]]) -> str:
    out = []
    for p in phases:
        out.append(f"== {p['phase']} (server connection limit {p['metrics']['pulsewire_connection_limit']:,.0f})")
        for kind in ("half_open", "helloless"):
            k = p["attack"][kind]
            c = k["closed_after_s"]
            out.append(
                f"  {kind:<10} accepted {k['accepted']:>6,}  closed after median {c['median']} s, max {c['max']} s  "
                f"refused (503) {k['refused']:,}  other answers {k['other_answers']:,}  errors {k['errors']:,}  "
                f"open at end {k['open_at_end']:,}"
            )
        out.append(f"  close codes of hello-less connections: {p['attack']['close_codes']}")
        s = p["server"]
        out.append(f"  server open files {s['open_files']}, RSS MB {s['rss_mb']}")
        out.append(
            "  timeline: " + "; ".join(f"{t['s']} s: {t['open_files']} files {t['rss_mb']} MB" for t in s["timeline"])
        )
        d = p["device"]
        out.append(
            f"  real device: connect ms {d['connect_ms']} (503s retried: {d['connect_refusals']}, failed: "
            f"{d['failures']}); ack ms {d['ack_ms']}"
        )
        out.append(
            f"  server: handshake timeouts {p['metrics']['pulsewire_handshake_timeouts_total']:,.0f}, hello timeouts "
            f"{p['metrics']['pulsewire_hello_timeouts_total']:,.0f}, refused "
            f"{p['metrics']['pulsewire_connections_refused_total']:,.0f}; {p['server_log_lines']} log lines at warning "
            f"and above, errors: {p['server_log_errors'] or 'none'}"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.half_open < 0 or args.helloless < 0:
        give_up("--half-open and --helloless take 0 or more")
    try:
        import psutil  # noqa: F401
    except ImportError:
        give_up("psutil is needed to sample the server: pip install psutil")
    try:
        raise_open_files_limit(args.half_open + args.helloless + OPEN_FILES_MARGIN)
    except BenchError as exc:
        give_up(str(exc))
    limits = [None] + ([args.open_files_limit] if args.open_files_limit else [])
    phases, failed = [], False
    for limit in limits:
        try:
            phases.append(run_phase(args, limit))
        except BenchError as exc:
            say(f"  phase failed: {exc}")
            failed = True
    text = report(phases)
    print(text, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps({"phases": phases, "load_average": [round(x, 2) for x in os.getloadavg()]}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
