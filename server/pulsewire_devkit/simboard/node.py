"""Node.js, which runs the simulated board, and the MicroPython build it runs (shipped with the devkit)."""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

MIN_NODE_MAJOR = 18


class NodeError(RuntimeError):
    """Node.js is missing or too old."""


def find_node() -> str:
    """The path of node; NodeError saying what to install when it is missing or too old."""
    node = shutil.which("node")
    if node is None:
        raise NodeError(
            "node not found on PATH: the simulated board runs MicroPython on Node.js. "
            f"Install Node.js {MIN_NODE_MAJOR}+ (e.g. `apt-get install nodejs`, or from https://nodejs.org)."
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    found = re.match(r"v?(\d+)", version)
    if found is None or int(found.group(1)) < MIN_NODE_MAJOR:
        raise NodeError(f"Node.js {version or '(unknown version)'} is too old: install Node.js {MIN_NODE_MAJOR}+.")
    return node


def script(name: str) -> Path:
    """One of the simulation's own Node scripts (run.mjs, boardsim.mjs)."""
    return Path(str(files("pulsewire_devkit.simboard") / name))


def micropython_dir() -> Path:
    """The folder holding MicroPython's WebAssembly build (micropython.mjs, .wasm, package.json)."""
    return Path(str(files("pulsewire_devkit.simboard") / "vendor" / "micropython"))
