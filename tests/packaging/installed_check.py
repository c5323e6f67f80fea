"""Run by tests/packaging/test_wheel.py with the Python of a fresh venv that has only the wheel
installed, in a network namespace with nothing but loopback, from a folder outside the repository.

It uses what a user has: the `pulsewire` command and the packages the wheel brings (httpx). It
prints one JSON object of what it saw; the test decides what is right.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

BIN = Path(sys.executable).parent
PULSEWIRE = str(BIN / "pulsewire")
IMPORTS = re.compile(r"""(?:^|\s)(?:import|export)\s[^;]*?from\s*["'](\.[^"']+)["']""", re.M)
ASSETS = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"'#]+)["']""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(*args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([PULSEWIRE, *args], stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM, as a service manager would; the exit status, or None if it did not stop in 15 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def wait_for(check: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    return None


def dashboard(client: httpx.Client) -> dict[str, Any]:
    """The page at / and every file it loads: its assets, and the scripts' imports, followed."""
    index = client.get("/")
    seen: dict[str, int] = {}
    todo = [urljoin("/", ref) for ref in ASSETS.findall(index.text)]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        resp = client.get(path)
        seen[path] = resp.status_code
        if path.endswith(".js") and resp.status_code == 200:
            todo += [urljoin(path, ref) for ref in IMPORTS.findall(resp.text)]
    return {"status": index.status_code, "title": "<title>Pulsewire" in index.text, "files": seen}


def docs_page(client: httpx.Client) -> dict[str, Any]:
    page = client.get("/docs")
    refs = [urljoin("/docs", ref) for ref in ASSETS.findall(page.text)]
    return {
        "status": page.status_code,
        "other_hosts": re.findall(r"https?://[^\s\"'<>]+", page.text),
        "files": {ref: client.get(ref).status_code for ref in refs},
        "openapi": client.get("/openapi.json").status_code,
    }


def readings(client: httpx.Client, device_id: str) -> int:
    resp = client.get(f"/api/devices/{device_id}/telemetry", params={"keys": "temperature"})
    return len(resp.json().get("temperature", [])) if resp.status_code == 200 else 0


def devkit_refusal(*args: str) -> dict[str, Any]:
    done = subprocess.run([PULSEWIRE, *args], capture_output=True, text=True, timeout=60)
    return {"code": done.returncode, "says": done.stderr.strip()}


def main() -> None:
    work = Path.cwd()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    seen: dict[str, Any] = {}
    server = start(
        "serve", "--port", str(port), "--data-dir", "data", "--simulate", "1", "--sample-interval-ms", "200",
        log=work / "serve.log",
    )  # fmt: skip
    simulator = None
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            seen["healthy"] = bool(wait_for(lambda: client.get("/healthz").status_code == 200, 30))
            seen["dashboard"] = dashboard(client)
            seen["docs"] = docs_page(client)
            seen["serve_simulate_readings"] = wait_for(lambda: readings(client, "sim-1"), 20) or 0
            simulator = start("simulate", "1", "--prefix", "solo", "--server", base, "--data-dir", "data",
                              log=work / "simulate.log")  # fmt: skip
            seen["simulate_readings"] = wait_for(lambda: readings(client, "solo-1"), 20) or 0
            seen["simulate_stopped"] = stop(simulator)
            simulator = None
        seen["flash"] = devkit_refusal("flash", "--port", "/dev/ttyUSB0", "--server", base, "--device-id", "x")
        seen["board_sim"] = devkit_refusal("board-sim", "--port", "0")
    finally:
        if simulator is not None:
            stop(simulator)
        seen["serve_stopped"] = stop(server)
        seen["serve_log"] = (work / "serve.log").read_text(errors="replace")[-4000:]
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
