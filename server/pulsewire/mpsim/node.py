"""Node.js and the MicroPython WebAssembly package the simulated board runs on.

The package (pinned in package.json, locked in package-lock.json) is installed once per version
into a cache folder keyed by the hash of those two files, so every checkout and every installed
copy of Pulsewire shares it and a new pin installs next to the old one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "@micropython/micropython-webassembly-pyscript"
MIN_NODE_MAJOR = 18


class NodeError(RuntimeError):
    """Node.js or npm is missing or too old, or the package could not be installed."""


def find_node() -> tuple[str, str]:
    """Paths of node and npm; NodeError saying what to install when either is missing or too old."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if path is None)
        raise NodeError(
            f"{missing} not found on PATH: the simulated board runs MicroPython on Node.js. "
            f"Install Node.js {MIN_NODE_MAJOR}+ with npm (e.g. `apt-get install nodejs npm`, or from https://nodejs.org)."
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    found = re.match(r"v?(\d+)", version)
    if found is None or int(found.group(1)) < MIN_NODE_MAJOR:
        raise NodeError(f"Node.js {version or '(unknown version)'} is too old: install Node.js {MIN_NODE_MAJOR}+.")
    return node, npm


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pulsewire" / "mpsim"


def _manifests() -> list[Path]:
    return [path for path in (HERE / "package.json", HERE / "package-lock.json") if path.is_file()]


def _key() -> str:
    digest = hashlib.sha256()
    for path in _manifests():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def modules_dir() -> Path:
    """Where ensure_modules() puts node_modules (installed or not)."""
    return cache_root() / _key() / "node_modules"


def installed(node_modules: Path) -> bool:
    return (node_modules / PACKAGE / "micropython.mjs").is_file() and (
        node_modules / PACKAGE / "micropython.wasm"
    ).is_file()


def ensure_modules(quiet: bool = False) -> Path:
    """The node_modules folder holding MicroPython for WebAssembly, installed on first use.

    The install happens in a temporary folder renamed into place when complete, so an interrupted
    or concurrent install never leaves a half-filled cache behind.
    """
    target = modules_dir()
    if installed(target):
        return target
    _, npm = find_node()
    home = target.parent
    home.parent.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"mpsim: installing {PACKAGE} for the simulated board into {home} (once)...", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix=home.name + ".", dir=home.parent))
    try:
        for path in _manifests():
            shutil.copyfile(path, work / path.name)
        command = "ci" if (work / "package-lock.json").is_file() else "install"
        done = subprocess.run(
            [npm, command, "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0 or not installed(work / "node_modules"):
            raise NodeError(f"`npm {command}` of {PACKAGE} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        if home.exists() and not installed(target):  # a copy someone damaged: replace it
            shutil.rmtree(home, ignore_errors=True)
        try:
            work.rename(home)
        except OSError:  # another process finished first: keep its copy
            if not installed(target):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
