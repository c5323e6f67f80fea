"""`pulsewire board-sim`: a simulated ESP32 on a TCP port that `mpremote` (and `pulsewire flash`) can flash.

The simulation itself is mpsim/boardsim.mjs (MicroPython's WebAssembly port under Node); this
module finds Node, installs the MicroPython package once (mpsim/node.py), and hands over to it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pulsewire.mpsim.node import ensure_modules, find_node

SCRIPT = Path(__file__).resolve().parent / "mpsim" / "boardsim.mjs"
FS_FOLDER = "board-sim"  # under the data folder, unless --fs says otherwise


def default_fs_dir() -> Path:
    """<data-dir>/board-sim, the data dir being PULSEWIRE_DATA_DIR or ./data as for `pulsewire serve`."""
    return Path(os.environ.get("PULSEWIRE_DATA_DIR") or "data") / FS_FOLDER


def command(host: str, port: int, fs_dir: Path) -> list[str]:
    """The node command line that runs the simulated board (installs MicroPython on first use)."""
    node, _ = find_node()
    modules = ensure_modules()
    return [
        node,
        str(SCRIPT),
        "--modules",
        str(modules),
        "--host",
        host,
        "--port",
        str(port),
        "--fs",
        str(fs_dir.resolve()),
    ]


def run(host: str, port: int, fs_dir: Path) -> None:
    """Become the simulation: Node takes this process over, so Ctrl-C and signals reach it directly."""
    argv = command(host, port, fs_dir)
    fs_dir.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)
