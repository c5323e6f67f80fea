"""The load generator, bench/peers/load.mjs: Node drives devices on the device channel (or publishers on an
MQTT broker) with a live client measuring latency, and prints its figures as one JSON line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.cli import LOG_LINES_KEPT, BenchError, give_up, say
from harness.paths import BENCH_DIR, WORK_DIR

DEFAULT_PEERS_DIR = Path(os.environ.get("PULSEWIRE_BENCH_PEERS", BENCH_DIR / "peers"))
LOADGEN_FILES = ("load.mjs", "package.json")
MIN_NODE_MAJOR = 18

WINDOW = 8  # un-acked batches per device, as in the peer figures
TARGET_RATE = 5_000  # readings/s in all of the paced latency run: the rate the latency targets name


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
    lives: Sequence[str] = (),
) -> dict[str, Any]:
    """Run load.mjs once against `url` (ws:// for the device channel, mqtt:// for a broker); its JSON line.

    `lives`: the bases (ws://host:port) of one live subscriber each, whose figures are in the line's
    `lives` list; by default one subscriber on `url`.
    """
    command = [node, str(loadgen), "--proto", proto, "--url", url, "--devices", str(devices)]
    command += ["--batch", str(batch), "--window", str(WINDOW), "--seconds", plain_number(seconds)]
    if tokens_file is not None:
        command += ["--tokens", str(tokens_file)]
    if rate:
        command += ["--rate", str(rate)]
    if lives:
        command += ["--lives", ",".join(lives)]
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


def plain_number(value: float) -> str:
    """A number as load.mjs and a person read it: 10 rather than 10.0."""
    return str(int(value)) if float(value).is_integer() else str(value)
